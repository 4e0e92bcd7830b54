"""Colour from a lab's own scans: train the RGB models on registered photographs, judge them
on an area they never saw, keep the best as the `rgb` model.

    python -m training.lab_rgb DATASET [DATASET ...] --out DIR
        [--test DATASET ... | --held-out x0,y0,w,h | --split auto]
        [--models knn10,encoder,mlp_dwell,mlp_library] [--config FILE.toml] [--key=value ...]
    python -m export model rgb --trained DIR/trained --out models --data DIR

Each DATASET is a dataset file (`make convert`) whose photograph was registered to it
(`python -m training.register`); a simulated scene's photograph is aligned already. The
study's protocol: train on one area, test on another (training.lab_split: whole `--test`
scans, a rectangle of the first scan, or the automatic split). Trained and scored on the
held-out area, R² (the study's score) and CIEDE2000 to the photograph:

    knn10        kNN, k = 10, Euclidean: the study's best
    encoder      the study's encoder (spectrum -> RGB through its autoencoder's down path)
    mlp_dwell    ours: an MLP trained on Poisson re-counts at shorter dwells
    mlp_library  ours: the same plus a simulated pigment library seen through the scan's
                 instrument (training.library; only for an instrument the simulator models)

The best by held-out R² is saved as DIR/trained/rgb (each one also as rgb_<name>) with its
held-out metrics and the training scans (instrument, registration) in its info; `python -m
export model rgb ... --data DIR` writes the bundle, whose manifest states those and, read
from the first training scan (export.domain), the instrument it was trained for and its
training domain, so the edge refuses or flags a stream from another instrument.
DIR/lab_rgb.json and DIR/lab_rgb.md hold every figure, DIR/lab_rgb.png the held-out area.

Register with `--spot-px 0` (each scan pixel's square, as the study's "colour of the
photograph at that spot" and the simulator's aligned photograph define it): on m1_child the
registered colours then correlate 0.975-0.990 per channel with the aligned photograph
against 0.957-0.981 with the beam spot, and models trained on either differed by < 0.02 in
held-out R² (m1_virgin -> m1_child: MLP 0.418 vs 0.401, encoder 0.377 vs 0.387). The photograph's
lighting stays in the colours: flattening it from the scan itself was tried and mistakes
faded or darkened paint (alike in XRF, not in colour) for light; photograph the panel
evenly lit, with a grey card for exposure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from proto.dataset import DatasetError, open_dataset
from training import artifacts, models, train
from training.config import ConfigError, TrainConfig, load_config, to_toml
from training.data import Scene, load_scene
from training.jsonutil import jsonable
from training.lab_figures import LABELS, write_figures
from training.lab_instrument import identity_of, simulator_instrument
from training.lab_split import Part, Rect, SplitError, gather, split
from training.loop import predict, setup
from training.metrics import delta_e_rgb, r2_rgb
from training.photo import spot_px_of
from training.preprocess import MODEL_GRID, Preprocess

OURS = ("mlp_dwell", "mlp_library")


class LabError(ValueError):
    """A user mistake: one line that says what to do."""


@dataclass
class Candidate:
    name: str
    model: Any  # torch Model, or a scikit-learn estimator on `pre`'s features
    pre: Preprocess | None
    pred: np.ndarray  # (N_test, 3) sRGB 0..1
    metrics: dict
    fit_s: float
    note: str = ""
    extra: dict = field(default_factory=dict)  # more info keys (what export must rebuild)


@dataclass
class LabResult:
    parts: list[Part]
    candidates: dict[str, Candidate]
    best: str
    truth: np.ndarray  # (N_test, 3) held-out photograph colours
    info: dict = field(default_factory=dict)  # the best model's info (what export reads)
    trained: Path | None = None

    @property
    def best_ours(self) -> str:
        ours = [n for n in OURS if n in self.candidates]
        return max(ours, key=lambda n: self.candidates[n].metrics["r2"]) if ours else ""


def scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    de = delta_e_rgb(truth, pred)
    return {"r2": r2_rgb(truth, pred), "delta_e_median": float(np.median(de)),
            "delta_e_p95": float(np.percentile(de, 95)), "pixels": len(truth)}


def dwell_aug(cfg: TrainConfig, dwell_s: float) -> TrainConfig:
    """Poisson re-counts are exact only at dwells shorter than the scan's own: cap the
    configured range (made for the study's 1 s M1 scans) at the scan's dwell."""
    lo, hi = cfg.rgb_dwell_aug
    hi2 = min(hi, dwell_s)
    return replace(cfg, rgb_dwell_aug=(min(lo, hi2 * lo / hi), hi2))


def load_lab_scene(path: str | Path) -> Scene:
    try:
        scene = load_scene(path)
    except (DatasetError, OSError) as e:
        raise LabError(f"{path}: cannot read the dataset ({e})") from None
    if scene.photo is None:
        raise LabError(f"{path} has no photograph: register one first (python -m "
                       f"training.register PHOTO {path} --corners X,Y X,Y X,Y X,Y --refine)")
    return scene


def train_candidates(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                     first: Scene, names: list[str], cfg: TrainConfig) -> dict[str, Candidate]:
    """Train each named model on (xtr, ytr) counts/s -> colour, score it on (xte, yte)."""
    pre = Preprocess.fit(xtr)
    out: dict[str, Candidate] = {}
    epochs = cfg.epochs(cfg.rgb_epochs)

    def keep(name: str, model: Any, t0: float, note: str = "", sk: bool = False,
             extra: dict | None = None) -> None:
        raw = model.predict(pre(xte)) if sk else predict(model, xte)
        pred = np.clip(raw, 0, 1).astype(np.float32)
        out[name] = Candidate(name, model, pre if sk else None, pred, scores(yte, pred),
                              time.perf_counter() - t0, note, extra or {})
        m = out[name].metrics
        print(f"  {name}: R2 {m['r2']:.3f}, median dE {m['delta_e_median']:.2f} "
              f"({out[name].fit_s:.1f} s)", flush=True)

    for name in names:
        torch.manual_seed(cfg.seed)
        t0 = time.perf_counter()
        if name == "knn10":
            keep(name, models.knn().fit(pre(xtr), ytr), t0, sk=True)
        elif name == "encoder":
            enc = models.rgb_encoder(pre)
            train.train_rgb_net(enc, pre(xtr), ytr, "encoder", epochs, cfg)
            keep(name, enc, t0)
        elif name == "mlp_dwell":
            mlp = models.rgb_mlp(pre)
            train.train_rgb_augmented(mlp, xtr, ytr, "rgb mlp", epochs,
                                      dwell_aug(cfg, first.dwell_s))
            keep(name, mlp, t0)
        elif name == "mlp_library":
            with open_dataset(first.path) as ds:
                instrument, why, exact = simulator_instrument(ds.instrument)
            if instrument is None:
                print(f"  mlp_library: skipped ({why})", flush=True)
                continue
            lib = _library(instrument, first.dwell_s, cfg)
            x = np.concatenate([xtr, lib.rates]).astype(np.float32)
            y = np.concatenate([ytr, lib.rgb]).astype(np.float32)
            mlp = models.rgb_mlp(Preprocess.fit(x))
            train.train_rgb_augmented(mlp, x, y, "rgb mlp + library", epochs,
                                      dwell_aug(cfg, first.dwell_s))
            # export adds the library to the in-domain subspace when it can rebuild it
            extra = {"library": {"spectra": len(lib.rates), "stacks": len(lib.stacks)}}
            keep(name, mlp, t0, f"+ {len(lib.rates)} simulated spectra of {len(lib.stacks)} "
                                "reference stacks (fit s includes simulating them)",
                 extra=extra if exact else None)
    return out


_LIBRARIES: dict[str, Any] = {}  # one simulation per instrument, dwell and library config


def _library(instrument: Any, dwell_s: float, cfg: TrainConfig) -> Any:
    """The pigment library as this instrument sees it at this dwell (built once a process:
    the report trains on several photographs of the same scans)."""
    from training import library

    key = json.dumps(jsonable([instrument.to_dict(), dwell_s, cfg.library]), sort_keys=True)
    if key not in _LIBRARIES:
        _LIBRARIES[key] = library.build(instrument, dwell_s, cfg.library, progress=False)
    return _LIBRARIES[key]


def run(datasets: list[str | Path], *, tests: list[str | Path] = (), held_out: Rect | None = None,
        out: str | Path | None = None, names: list[str] | None = None,
        cfg: TrainConfig | None = None) -> LabResult:
    """Split, train, score, and (with `out`) save every model and the figures."""
    cfg = cfg or TrainConfig()
    names = list(names or LABELS)
    unknown = [n for n in names if n not in LABELS]
    if unknown:
        raise LabError(f"unknown model {unknown[0]!r} (known: {', '.join(LABELS)})")
    setup(cfg.seed, cfg.threads)
    train_scenes = [load_lab_scene(p) for p in datasets]
    test_scenes = [load_lab_scene(p) for p in tests]
    spots = []
    for s in train_scenes:
        with open_dataset(s.path) as ds:
            spots.append(spot_px_of(ds.scan, ds.instrument))
    parts = split(train_scenes, test_scenes, held_out, spots)
    xtr, ytr = gather(parts, "train")
    xte, yte = gather(parts, "test")
    for p in parts:
        print(f"{p.scene.name}: {len(p.train)} training, {len(p.test)} held-out pixels "
              f"({p.area})", flush=True)
    first = next(p.scene for p in parts if len(p.train))
    cands = train_candidates(xtr, ytr, xte, yte, first, names, cfg)
    if not cands:
        raise LabError("no model could be trained (see the lines above)")
    best = max(cands, key=lambda n: cands[n].metrics["r2"])
    result = LabResult(parts, cands, best, yte)
    result.info = model_info(result, best, cfg, len(xtr))
    if out is not None:
        save(result, Path(out), cfg, len(xtr))
    return result


def model_info(result: LabResult, name: str, cfg: TrainConfig, spectra: int) -> dict:
    """What artifacts.save stores beside the model and export copies into the manifest."""
    c = result.candidates[name]
    train_parts = [p for p in result.parts if len(p.train)]
    held = {"areas": [{"scene": p.scene.name, "pixels": len(p.test), "area": p.area}
                      for p in result.parts if len(p.test)]}
    info = {
        "kind": "rgb", "grid": MODEL_GRID.to_dict(), "outputs": ["R", "G", "B"],
        "units": "sRGB 0..1", "model": LABELS[name],
        "train_data": {
            "scene": "+".join(p.scene.name for p in train_parts),
            "path": str(train_parts[0].scene.path), "spectra": spectra,
            "datasets": [registration_summary(p) for p in train_parts],
            "held_out": held,
        },
        "metrics": {"test": {**c.metrics, **held},
                    "selected_from": {n: k.metrics for n, k in result.candidates.items()},
                    "selection": "best held-out R² among the models above"},
        "config": jsonable(cfg), **c.extra,
    }
    if c.pre is not None:
        info["preprocess"] = c.pre.to_dict()
    return info


def registration_summary(part: Part) -> dict:
    """How a training scan's photograph came onto its grid (training.register's record)."""
    from training.register import read_registration

    reg = read_registration(part.scene.path)
    with open_dataset(part.scene.path) as ds:
        instrument = identity_of(ds.instrument)
    out: dict[str, Any] = {"scene": part.scene.name, "file": part.scene.path.name,
                           "pixels": len(part.train),
                           "instrument": instrument or "not stated (convert --instrument)"}
    if reg is None:
        out["photo"] = "aligned with the scan (no registration stored)"
    else:
        ref = reg.get("refinement", {})
        out["photo"] = {"source_file": str(reg.get("source_file", "")),
                        "control_points": len(reg.get("control_points", [])),
                        "residual_max_scan_px": float(np.max(reg["residuals_scan_px"])),
                        "refined": bool(ref.get("kept", False)),
                        "footprint": str(reg.get("footprint", ""))}
    return out


def save(result: LabResult, out: Path, cfg: TrainConfig, spectra: int) -> None:
    trained = out / "trained"
    for name, c in result.candidates.items():
        info = result.info if name == result.best else model_info(result, name, cfg, spectra)
        artifacts.save(f"rgb_{name}", c.model, info, trained)
    artifacts.save("rgb", result.candidates[result.best].model, result.info, trained)
    result.trained = trained
    write_figures(result, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.lab_rgb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False,
                                 epilog="Any further --key=value overrides that TrainConfig "
                                        "field (e.g. --rgb_epochs=10 --library.stacks=200).")
    ap.add_argument("datasets", nargs="+", help="registered dataset files to train on")
    ap.add_argument("--out", required=True, help="folder for the trained models and figures")
    area = ap.add_mutually_exclusive_group()
    area.add_argument("--test", nargs="+", default=[], metavar="DATASET",
                      help="held-out scans (whole): another area, as in the study")
    area.add_argument("--held-out", metavar="X0,Y0,W,H",
                      help="held-out rectangle of the first scan, in scan pixels")
    area.add_argument("--split", choices=["auto"],
                      help="automatic: the last scan given, or the last quarter of one scan "
                           "(the default when no held-out area is named)")
    ap.add_argument("--models", default=",".join(LABELS),
                    help=f"comma-separated, of {', '.join(LABELS)} (default: all)")
    ap.add_argument("--config", default=None, metavar="FILE.toml",
                    help="TOML file of TrainConfig values (applied before --key=value)")
    a, rest = ap.parse_known_args(argv)
    try:
        cfg = load_config(a.config, rest)
        rect = Rect.parse(a.held_out) if a.held_out else None
        print(f"# training config\n{to_toml(cfg)}", flush=True)
        result = run(a.datasets, tests=a.test, held_out=rect, out=a.out, cfg=cfg,
                     names=[n.strip() for n in a.models.split(",") if n.strip()])
    except (LabError, SplitError, ConfigError) as e:
        print(f"lab_rgb: {e}", file=sys.stderr)
        return 2
    m = result.candidates[result.best].metrics
    print(f"best: {result.best} (R2 {m['r2']:.3f}, median dE {m['delta_e_median']:.2f}) -> "
          f"{result.trained}/rgb; figures in {Path(a.out) / 'lab_rgb.md'}")
    print(f"next: python -m export model rgb --trained {result.trained} --out models "
          f"--data {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

