"""`make calibrate`: an instrument description and a lab's scans -> a verified element bundle.

    python -m export.calibrate INSTRUMENT.toml SCAN [SCAN ...] [--out models] [--name elements]
        [--detector D] [--test SCAN ...] [--held-out x0,y0,w,h] [--test-detector D ...]
        [--no-refine] [--quick] [--no-residual] [--work artifacts/calibrate]

SCANs are any file training.readers reads (dataset files from `make convert`, IXRF .GeoPIXE,
APS MAPS HDF5, Bruker ...); `--detector` picks one element of a multi-detector scan (default:
their sum). A scan whose own header states another excitation than the description is
refused before any work (export.calib_header). The steps, each long one with a progress bar:

1. PyMca's configuration from the description (training.fitconfig);
2. the held-out pixels: --test scans, a --held-out rectangle of the first scan, or the last
   scan / last quarter; pixels within a beam footprint of the rectangle are in neither side;
3. PyMca on the training pixels: calibration (zero, gain, noise, Fano) refined by a full fit
   of their sum spectrum, then the fast fit's labels (export.calib_data);
4. the bundle: PyMca's fast fit compiled at that calibration (export.fastfit), checked in
   ONNX Runtime against its float64 reference, plus the residual MLPs trained on the labels
   with early stopping on the held-out pixels (training.residual_ensemble, where available; a
   large map's residual learns from a random RESIDUAL_SPECTRA of them);
5. the held-out scores, read back from the bundle on disk and run as the edge runs it, against
   PyMca run on the held-out pixels as its user would (refined on their own sum spectrum):
   fast fit, fast fit + residual, the fast fit rebuilt at the held-out data's own calibration,
   ROI sums with a gain fitted on the training labels, and for each --test-detector the same
   pixels seen by another detector, with PyMca detector vs detector as the repeat floor;
6. the scores into the manifest (metrics.held_out) and a table on the console.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from export import calib_eval as ev
from export.calib_bundle import (
    Served,
    add_metrics,
    domain_fields,
    domain_of,
    torch_served,
    write_element_bundle,
)
from export.calib_data import (
    Fitted,
    LabScan,
    PymcaRef,
    Rows,
    epochs_for,
    load_scan,
    split_scans,
)
from export.element_bundle import FitOnGrid
from export.fastfit import map_lines
from proto.bundle import BundleError, read_manifest
from proto.energy import Rebinner, counts_per_live_second
from proto.identity import identity_map
from proto.instrument import load as load_description
from training.jsonutil import jsonable
from training.lab_split import Part, SplitError
from training.preprocess import MODEL_GRID, rates_from_counts
from training.readers import ReaderError
from training.roi import RoiModel, roi_sums

CHECK = 256  # held-out spectra the compiled fit is checked on against its float64 reference
# training pixels the in-domain subspace and signal range are fitted on: a random subset of a
# large map (its statistics settle long before), every pixel of a smaller one
DOMAIN_SPECTRA = 50_000
CHUNK = 4096  # training rows read at a time where a whole-set array is not needed
# pixels the residual learns from and stops on: it holds ~10 kB a pixel (binned features, fit,
# torch copies), so a lab's million-pixel map trains on a random subset of them
RESIDUAL_SPECTRA = 200_000
RESIDUAL_HELD = 50_000


@dataclass
class HeldSet:
    """Held-out pixels of one scan as one detector saw them, with PyMca's fit of them."""

    scan: LabScan
    idx: np.ndarray
    label: str
    fitted: Fitted
    reference: np.ndarray
    repeat: np.ndarray | None = None  # the training detector's PyMca on the same pixels


class Steps:
    """One progress bar over the steps, a nested one for per-pixel work; times per step."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled, self.times, self._t = enabled, {}, time.perf_counter()
        self.bar = tqdm(total=total, desc="calibrate", unit="step", disable=not enabled,
                        leave=False)
        self.name = ""

    def start(self, name: str) -> None:
        self.end()
        self.name, self._t = name, time.perf_counter()
        self.bar.set_postfix_str(name)

    def end(self) -> None:
        if self.name:
            self.times[self.name] = round(time.perf_counter() - self._t, 2)
            self.bar.update(1)
            self.name = ""

    def pixels(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="px", disable=not self.enabled, leave=False)

    def close(self) -> None:
        self.end()
        self.bar.close()


def _held_sets(ref: PymcaRef, parts: list[tuple[LabScan, Part]], test_detectors: list[str],
               steps: Steps) -> list[HeldSet]:
    sets = []
    for scan, part in parts:
        if not len(part.test):
            continue
        steps.start(f"PyMca on held-out {scan.name}")
        held = Rows([(scan, part.test)])
        fitted = ref.fitted(held, scan.grid, held.live_time_s)
        labels = fitted.labels(held, held.live_time_s)
        sets.append(HeldSet(scan, part.test, f"{scan.name}, {part.area}", fitted, labels))
        for det in test_detectors:
            steps.start(f"PyMca on detector {det}")
            other = load_scan(scan.source, det, ref.desc)
            if other.shape != scan.shape or other.grid.channels != scan.grid.channels:
                raise ReaderError(scan.source, f"detector {det} has another shape or grid")
            seen = Rows([(other, part.test)])
            f2 = ref.fitted(seen, other.grid, seen.live_time_s)
            lab2 = f2.labels(seen, seen.live_time_s)
            sets.append(HeldSet(other, part.test, f"{other.name} (another detector), same "
                                f"held-out pixels ({part.area})", f2, lab2, repeat=labels))
    return sets


def _residual(fit, train: Rows, labels: np.ndarray, held: HeldSet, fitted: Fitted,
              epochs: int | None) -> tuple[object | None, dict]:
    """The residual MLPs through training.residual_ensemble (its API), or (None, why not)."""
    try:
        from training.residual import ResidualConfig
        from training.residual_ensemble import train_ensemble
    except ImportError as exc:
        return None, {"skipped": f"training.residual not available ({exc})"}
    some = _at_most(len(train), RESIDUAL_SPECTRA)
    some_held = _at_most(len(held.idx), RESIDUAL_HELD)
    train = train.subset(some)
    rates = Rows([*train.parts, (held.scan, held.idx[some_held])], per_live_second=True)
    targets = np.concatenate([labels[some], held.reference[some_held]])
    mask = np.arange(len(rates)) >= len(train)
    cfg = ResidualConfig(epochs=epochs or epochs_for(len(train)))
    net, metrics = train_ensemble(fit, rates, rates.live_time_s, targets, held_out=mask,
                                  outputs=fitted.model.outputs, grid=held.scan.grid, cfg=cfg,
                                  progress=False)
    return net, metrics


def calibrate(instrument: str | Path, scans: list[str | Path], out: str | Path = "models", *,
              name: str = "elements", detector: str | None = None,
              tests: list[str | Path] = (), held_out: str | None = None,
              test_detectors: list[str] = (), refine: bool = True, quick: bool = False,
              residual: bool = True, epochs: int | None = None, work: str | Path | None = None,
              progress: bool = True) -> dict:
    """The whole path (module docstring); returns the summary written into the manifest."""
    t0 = time.perf_counter()
    desc = load_description(instrument)
    # the steps: configuration, read, refine, labels, residual, export, scores, and PyMca
    # on each held-out part as each detector saw it (the count is known after the split)
    steps = Steps(8 + len(test_detectors), progress)
    steps.start("PyMca configuration")
    ref = PymcaRef(desc, quick=quick, refine=refine)
    steps.start("read scans")
    train = [load_scan(p, detector, desc) for p in scans]
    test = [load_scan(p, detector, desc) for p in tests]
    grid = train[0].grid
    if any(s.grid != grid for s in [*train, *test]):
        raise ReaderError(train[0].source, "the scans have different calibrations: calibrate "
                                           "each instrument setting on its own")
    parts = split_scans(train, test, held_out)
    steps.bar.total = 7 + sum(len(p.test) > 0 for _, p in parts) * (1 + len(test_detectors))
    tr = Rows([(s, p.train) for s, p in parts])
    tr_live = tr.live_time_s
    steps.start("PyMca: refine calibration, configure")
    fitted = ref.fitted(tr, grid, tr_live)
    steps.start("PyMca labels")
    with steps.pixels(len(tr), "PyMca labels") as bar:  # each scan its own PyMca call
        labels = np.concatenate([fitted.labels(one, one.live_time_s, bar)
                                 for one in (Rows([part]) for part in tr.parts)])
    outputs = fitted.model.outputs
    sets = _held_sets(ref, parts, [str(d) for d in test_detectors], steps)
    fit = FitOnGrid(fitted.model, grid)
    steps.start("residual")
    net, res_metrics = (None, {"skipped": "--no-residual"}) if not residual else _residual(
        fit, tr, labels, sets[0], fitted, epochs)
    if "skipped" in res_metrics and progress:
        tqdm.write(f"residual skipped: {res_metrics['skipped']}")
    steps.start("export")
    first = sets[0]
    fields = {
        "instruments": [identity_map(desc.for_stream(summed=train[0].detector in ("", "sum")))],
        "training": {"artifact": name, "framework": "pymca-compiled", "model": "fastfit",
                     "data": {"scans": [str(s.source.name) + (f" [{s.detector}]" if s.detector
                                                               else "") for s in train],
                              "spectra": len(tr),
                              "targets": "PyMca FastXRFLinearFit labels"}},
    }
    live_tr = np.maximum(tr_live, 1e-12)
    some = _at_most(len(tr), DOMAIN_SPECTRA)
    per_s = Rows(tr.parts, per_live_second=True)  # float32, a block at a time
    some_rates = np.concatenate([per_s.take(some[i:i + CHUNK])
                                 for i in range(0, len(some), CHUNK)])
    subspace = domain_of(some_rates, live_tr[some])
    fields["domain"] = domain_fields(some_rates, live_tr[some], grid)
    del some_rates
    folder = Path(out) / name
    _, parity, serves = write_element_bundle(
        fit, net, folder, check_counts=first.scan.counts[first.idx[:CHECK]],
        check_live=first.scan.live_time_s[first.idx[:CHECK]], fields=fields, subspace=subspace)
    steps.start("held-out scores")
    lines = map_lines(fitted.model)  # 'Co K', 'Ba L': where each map's ROI window sits
    sums = np.concatenate([roi_sums(rates_from_counts(tr[i:i + CHUNK], live_tr[i:i + CHUNK],
                                                      grid), lines)
                           for i in range(0, len(tr), CHUNK)])
    roi = RoiModel(elements=lines).fit_sums(sums, labels)
    served = Served(folder)
    scores = []
    for h in sets:
        preds, sigma = _predictions(h, fit, served, serves, net, roi, refine)
        held = ev.HeldOut(h.label, outputs, h.reference, sigma, repeat=h.repeat,
                          note=served.verdict.line() if served.verdict else "")
        held.preds.update(preds)
        scores.append(ev.score(held))
    steps.close()
    summary = {
        "instrument": desc.name, "calibration": fitted.refined, "outputs": list(outputs),
        "parity": parity, "serves": serves,
        "residual": res_metrics.get("skipped") or _residual_line(res_metrics, len(tr)),
        "held_out": scores, "seconds": steps.times,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    add_metrics(folder, {"held_out": scores, "calibration": fitted.refined,
                         "residual": {k: v for k, v in res_metrics.items()
                                      if k in ("skipped", "residual_kept", "held_out")}})
    if work is not None:
        _save(Path(work) / name, fitted, summary)
    return summary


def _residual_line(metrics: dict, n_train: int) -> str:
    kept = ", ".join(e for e, k in metrics.get("residual_kept", {}).items() if k)
    learnt = metrics.get("held_out", {}).get("train_spectra", n_train)
    return f"trained, kept for {kept or 'no element'}" + (
        f" (learnt from {learnt:,} of the {n_train:,} training pixels, drawn at random)"
        if learnt < n_train else "")


def _predictions(h: HeldSet, fit: FitOnGrid, served: Served, serves: str, net, roi: RoiModel,
                 refine: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each method's areas on the held-out pixels of `h`, and the fit's sigma, CHUNK pixels at
    a time: float copies of a lab map's held-out quarter (~18 bytes a value) would not fit.
    The bundle read back must serve the fast fit's own areas (checked on the whole set)."""
    outputs = fit.outputs
    # the axis the edge reads this stream on, decided on its first pixels in scan order
    axis = served.axis_for(h.scan.counts, h.scan.grid)
    own = FitOnGrid(h.fitted.model, h.scan.grid) if refine else None
    to_fit, to_roi = Rebinner(axis, fit.grid), Rebinner(axis, MODEL_GRID)  # ROI: same axis
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(h.idx), CHUNK):
        pixels = h.idx[i:i + CHUNK]
        counts, live = h.scan.counts[pixels], np.maximum(h.scan.live_time_s[pixels], 1e-12)
        rates = counts_per_live_second(counts, live, to_fit)
        areas, sigma = fit(rates, live)
        got = {ev.FAST: areas, "sigma": sigma,
               "alone": served(counts, live, h.scan.grid, outputs, gate=False, axis=axis),
               ev.ROI: roi.predict(counts_per_live_second(counts, live, to_roi))}
        if serves.startswith("fast fit + residual"):
            got[ev.RESIDUAL] = served(counts, live, h.scan.grid, outputs, axis=axis)
        elif net is not None:  # trained, not exported: scored in torch (the summary says so)
            from training.residual import served as with_residual

            got[ev.RESIDUAL] = torch_served(with_residual, net, rates, live, areas, sigma,
                                            np.ones(len(live)))[:, :len(outputs)]
        if own is not None:
            got[ev.RECAL] = own(counts / live[:, None], live)[0]
        for k, v in got.items():
            parts.setdefault(k, []).append(v)
    preds = {k: np.concatenate(v) for k, v in parts.items()}
    sigma, alone = preds.pop("sigma"), preds.pop("alone")
    if not np.allclose(alone, preds[ev.FAST], rtol=1e-3, atol=1e-3 * max(sigma.max(), 1e-6)):
        raise ValueError(f"{served.bundle.folder}: the bundle read back differs from the fast "
                         "fit")
    return preds, sigma


def _save(folder: Path, fitted: Fitted, summary: dict) -> None:
    import json

    from export.calib_bundle import finite

    folder.mkdir(parents=True, exist_ok=True)
    fitted.cfg.write(str(folder / "pymca.cfg"))
    (folder / "summary.json").write_text(json.dumps(finite(jsonable(summary)), indent=1))
    (folder / "table.txt").write_text(report(summary) + "\n")


def report(summary: dict) -> str:
    cal = summary["calibration"]
    head = [f"Element bundle for {summary['instrument']}: outputs {', '.join(summary['outputs'])}"]
    if cal:
        head.append("calibration refined by PyMca on the training sum spectrum: " + ", ".join(
            f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in cal.items()))
    p = summary["parity"]
    head.append(f"bundle serves: {summary['serves']}; residual: {summary['residual']}")
    head.append(f"ONNX Runtime vs the float64 fit{' + torch residual' if 'rtol' in p else ''} "
                f"on {p['spectra']} held-out spectra: worst {p['ratio']:.3f} of the tolerance")
    tables = [ev.text_table(s) for s in summary["held_out"]]
    return "\n".join(head) + "\n\n" + "\n\n".join(tables) + "\n\n" + ev.LEGEND + "\n\n" + \
        ev.summary(summary["held_out"]) + f"\nwall time {summary['wall_s']:.1f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("instrument", type=Path, help="instrument description (.toml)")
    ap.add_argument("scans", nargs="+", type=Path, help="the lab's scans to calibrate on")
    ap.add_argument("--out", default="models", help="models folder (bundle goes to OUT/NAME)")
    ap.add_argument("--name", default="elements", help="bundle name (default: elements)")
    ap.add_argument("--detector", help="detector element (index, name or 'sum') of the scans")
    ap.add_argument("--test", nargs="*", default=[], type=Path, help="held-out whole scans")
    ap.add_argument("--held-out", help="held-out rectangle x0,y0,w,h of the first scan")
    ap.add_argument("--test-detector", nargs="*", default=[],
                    help="other detector elements: the held-out pixels as they saw them")
    ap.add_argument("--no-refine", action="store_true", help="keep the description's calibration")
    ap.add_argument("--quick", action="store_true", help="coarse tube continuum (faster PyMca)")
    ap.add_argument("--no-residual", action="store_true", help="the compiled fast fit alone")
    ap.add_argument("--epochs", type=int, help="residual epochs at most (default: scaled to "
                    "the training pixels, the best held-out epoch kept)")
    ap.add_argument("--work", default="artifacts/calibrate",
                    help="folder for the refined PyMca config, summary and table")
    a = ap.parse_args(argv)
    folder = Path(a.out) / a.name
    was = _instrument_of(folder)
    try:
        summary = calibrate(a.instrument, a.scans, a.out, name=a.name, detector=a.detector,
                            tests=a.test, held_out=a.held_out, test_detectors=a.test_detector,
                            refine=not a.no_refine, quick=a.quick, residual=not a.no_residual,
                            epochs=a.epochs, work=a.work)
    except (ReaderError, SplitError, ValueError) as exc:
        tqdm.write(f"calibrate: {exc}", file=sys.stderr)  # on its own line, above the bar
        return 1
    print(report(summary))
    now = _instrument_of(folder)
    print(f"bundle: {folder}" + (f" (replaces the {was} bundle that was there)"
                                 if was is not None and was != now else ""))
    return 0


def _at_most(n: int, cap: int, seed: int = 0) -> np.ndarray:
    """Positions 0..n-1, or `cap` of them drawn at random (sorted) when n is larger."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def _instrument_of(folder: Path) -> str | None:
    """The instrument a bundle was trained for ('M6 Jetstream'), if it names one: a lab
    serving models/ should hear that calibrate replaced another instrument's bundle."""
    try:
        named = read_manifest(folder).identities
    except (BundleError, OSError):
        return None
    return named[0].name if named else None


if __name__ == "__main__":
    sys.exit(main())
