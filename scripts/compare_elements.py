"""Must-show (b) of issue 13: the new element bundle (compiled fast fit + residual, served as
the edge serves it) against today's linear+mlp on the simulated held-out scenes, per element.

    python scripts/compare_elements.py [--bundle models/elements] [--data data]
        [--linmlp artifacts/compare/linmlp] [--out reports/elements_vs_linmlp.md] [--seeds 1 2]

linear+mlp is trained here on m6_corpus exactly as `train default` trained it before
(training.train.train_element_linmlp, the default config) unless --linmlp names a saved
artifact of it (saved there after training, so a rerun reuses it). The bundle runs through
edge.inference.Engine (rebin from the scene's calibration, live time, in-domain mark), both on
m6_ioannis (10 ms) and m6_ioannis_100ms; rows: relative RMSE and Pearson r, the fast fit
alone (the same bundle, residual gated off) as a third row. A miss is marked with '!'.
--seeds adds linear+mlp trained with other seeds: how far its default-seed row (REPORT.md's)
is from a typical draw of the same recipe. --draws adds bundles of the new recipe trained with
other seeds (`python -m export.element_bundle train --seed N`, then `python -m export model
elements`); with either, a row per model gives the mean relative RMSE over its draws.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference import Engine  # noqa: E402
from edge.models import ModelSession  # noqa: E402
from proto.dataset import open_dataset  # noqa: E402
from proto.elements import ELEMENTS, map_outputs  # noqa: E402
from proto.energy import Rebinner, counts_per_live_second  # noqa: E402
from training import artifacts, train  # noqa: E402
from training.catalogue import EL_TRAIN, scene_path  # noqa: E402
from training.data import load_scene  # noqa: E402
from training.loop import predict, setup  # noqa: E402
from training.metrics import element_errors  # noqa: E402

TESTS = ("m6_ioannis", "m6_ioannis_100ms")


def bundle_maps(folder: Path, path: Path, rows: int = 8) -> tuple[np.ndarray, np.ndarray, float]:
    """(served (N, G), fast fit alone with each pixel's SNIP (N, G), share in domain) over the
    whole scene (served: with the scan's continuum where the residual is not, as the edge)."""
    session = ModelSession(folder, threads=2)
    g = len(map_outputs(session.manifest.outputs))
    with open_dataset(path) as ds:
        engine = Engine({"elements": session}, ds.grid, 4096)
        rebin = Rebinner(ds.grid, session.manifest.grid)
        live_all = np.asarray(ds.live_time_s, np.float32)
        served, alone, inside = [], [], []
        for y0 in range(0, ds.shape[0], rows):
            counts = np.asarray(ds.counts[y0:y0 + rows]).reshape(-1, ds.shape[2])
            live = live_all[y0:y0 + rows].reshape(-1)
            out, outside = engine.run_checked(counts, live)
            served.append(out["elements"][:, :g])
            inside.append(~outside.get("elements", np.zeros(len(live), bool)))
            rates = counts_per_live_second(counts, live, rebin)  # what the engine fed
            alone.append(session.run(rates, live, np.zeros(len(live), bool))[:, :g])
    return np.concatenate(served), np.concatenate(alone), float(np.concatenate(inside).mean())


def linmlp(data: Path, saved: Path | None, seed: int = train.DEFAULT.seed):
    if saved is not None and (saved / "elements" / "info.json").exists():
        return artifacts.load("elements", saved)[0]
    cfg = dataclasses.replace(train.DEFAULT, seed=seed)
    setup(cfg.seed, cfg.threads)
    tr = load_scene(scene_path(data, EL_TRAIN))
    t0 = time.perf_counter()
    net = train.train_element_linmlp(tr, cfg.el_epochs, cfg)
    print(f"linear+mlp (seed {seed}) trained on {tr.name} in {time.perf_counter() - t0:.0f} s",
          flush=True)
    if saved is not None:
        artifacts.save("elements", net, train.element_info(
            tr.name, tr.path, len(tr.rates), {}, model="element_linmlp"), saved)
    return net


def seed_of(folder: Path) -> int:
    return int(json.loads((folder / "manifest.json").read_text())["training"]["config"]["seed"])


def mean_row(dwell: str, label: str, draws: list[list[dict]]) -> str:
    """The mean relative RMSE over a recipe's draws (seeds), per element."""
    means = np.mean([[e["rel_rmse"] for e in d] for d in draws], axis=0)
    return (f"| {dwell} | {label}, mean of {len(draws)} seeds | rel_rmse | "
            + " | ".join(f"{v:.3f}" for v in means) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/elements")
    ap.add_argument("--data", default="data")
    ap.add_argument("--linmlp", default="artifacts/compare/linmlp")
    ap.add_argument("--draws", nargs="*", default=[], type=Path,
                    help="element bundles of the new recipe trained with other seeds")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    ap.add_argument("--seeds", type=int, nargs="*", default=[],
                    help="also train linear+mlp with these seeds (its spread, beside the "
                         "default seed's row that REPORT.md holds)")
    a = ap.parse_args(argv)
    data = Path(a.data)
    saved = Path(a.linmlp) if a.linmlp else None
    net = linmlp(data, saved)
    others = {s: linmlp(data, saved and saved.with_name(f"{saved.name}_seed{s}"), s)
              for s in a.seeds if s != train.DEFAULT.seed}
    names = list(ELEMENTS)
    lines = ["| dwell | model | metric | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    misses = []
    for scene in TESTS:
        path = scene_path(data, scene)
        test = load_scene(path)
        rows = {"linear+mlp (old default)": predict(net, test.rates)}
        rows.update({f"linear+mlp, seed {s}": predict(n, test.rates) for s, n in others.items()})
        served, alone, inside = bundle_maps(Path(a.bundle), path)
        rows["fast fit + residual (new)"], rows["fast fit alone, per-pixel SNIP"] = served, alone
        for folder in a.draws:
            rows[f"fast fit + residual, seed {seed_of(folder)}"] = bundle_maps(folder, path)[0]
        if a.draws:  # what one bundle serving the draws' mean (an ensemble) would give
            rows["its draws' maps averaged"] = np.mean(
                [v for k, v in rows.items() if k.startswith("fast fit + residual")], axis=0)
        dwell = f"{test.dwell_s * 1000:g} ms"
        print(f"{scene}: {len(test.rates)} pixels, {inside:.1%} inside the bundle's domain",
              flush=True)
        errs = {k: [element_errors(test.elements[:, j], v[:, j]) for j in range(len(names))]
                for k, v in rows.items()}
        for metric, better in (("rel_rmse", np.less_equal), ("pearson_r", np.greater_equal)):
            for model, e in errs.items():
                cells = []
                for j, el in enumerate(names):
                    ok = better(round(e[j][metric], 3),
                                round(errs["linear+mlp (old default)"][j][metric], 3))
                    new = model.endswith("(new)")
                    if new and not ok:
                        misses.append(f"{dwell} {el} {metric}")
                    cells.append(f"{e[j][metric]:.3f}{'!' if new and not ok else ''}")
                lines.append(f"| {dwell} | {model} | {metric} | " + " | ".join(cells) + " |")
        for label in ("linear+mlp", "fast fit + residual"):
            draws = [e for k, e in errs.items() if k.startswith(label)]
            if len(draws) > 1:
                lines.append(mean_row(dwell, label, draws))
    table = "\n".join(lines)
    print(table)
    print("misses (new worse than linear+mlp at 3 decimals): " + (", ".join(misses) or "none"))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(table + "\n\nmisses: " + (", ".join(misses) or "none") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
