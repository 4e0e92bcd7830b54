"""The element residual on paintings it never saw: each painting (panel) of a simulated corpus
scored by a residual trained on the others, for each weight decay given.

    python scripts/residual_paintings.py [--instrument training/instruments/m6_jetstream.toml]
        [--scene data/m6_corpus.h5] [--wd 1e-5 1] [--seed 0] [--epochs 4]

The fast fit runs once over the scene (training.residual.prepare); then, per painting and
decay, training.residual.train_prepared with that painting held out and no refit on all pixels.
The epoch and the elements the residual serves are chosen on the scored painting itself, the
same way for every decay, so the columns compare the decays, not the choice. Cells: held-out
relative RMSE against the simulator's truth; an element a painting lacks (truth mean < 1 c/s)
is left out. Last line: in how many cells each decay alone has the least error at three
decimals, and how many are tied (where the residual serves no element, every decay ties).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.element_bundle import CompiledFit  # noqa: E402
from training.residual import (  # noqa: E402
    ResidualConfig,
    feature_layout,
    prepare,
    train_prepared,
)
from training.scan_rates import ScanRates  # noqa: E402

M6 = ROOT / "training" / "instruments" / "m6_jetstream.toml"


def compare_decays(fit: CompiledFit, scene: Path, decays: list[float], cfg: ResidualConfig,
                   out=print) -> list[int]:
    """Print the table (module docstring) through `out`; returns, per decay, in how many cells
    it alone has the least error at three decimals, then the number of ties."""
    t0 = time.perf_counter()
    scan = ScanRates(scene, fit.grid)
    masks = scan.paintings()
    if len(masks) < 2:
        raise ValueError(f"{scene.name} states {len(masks)} painting(s); holding one out "
                         "needs two or more")
    cfg = dataclasses.replace(cfg, refit_all=False)
    layout = feature_layout(fit.grid, cfg.feature_kev, cfg.feature_bin_kev)
    truth = scan.truth(fit.outputs)
    p = prepare(fit, scan, scan.live, truth, layout)
    out(f"{scene.name}: {len(scan)} spectra, {len(masks)} paintings; fast fit "
        f"{time.perf_counter() - t0:.0f} s")
    names = [f"wd {w:g}" for w in decays]
    out("| painting | element | fast fit | " + " | ".join(names) + " |")
    out("|---|---|---|" + "---|" * len(names))
    wins = [0] * (len(decays) + 1)  # the last: cells where two or more tie
    for painting, mask in masks.items():
        runs = [train_prepared(p, layout, held_out=mask, outputs=fit.outputs, progress=False,
                               cfg=dataclasses.replace(cfg, wd=w))[1]["held_out"]
                for w in decays]
        for j, el in enumerate(fit.outputs):
            if truth[mask, j].mean() < 1.0:
                continue
            errs = [r["fast_fit+residual"][el]["rel_rmse"] for r in runs]
            shown = np.round(errs, 3)
            best = np.flatnonzero(shown == shown.min())
            wins[int(best[0]) if len(best) == 1 else -1] += 1  # a tie as printed: no one's
            out(f"| {painting} | {el} | {runs[0]['fast_fit'][el]['rel_rmse']:.3f} | "
                + " | ".join(f"{e:.3f}" for e in errs) + " |")
    out("least error: " + ", ".join(f"{n} in {k}" for n, k in zip(names, wins[:-1], strict=True))
        + f", tied in {wins[-1]}, of {sum(wins)} ({time.perf_counter() - t0:.0f} s)")
    return wins


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instrument", type=Path, default=M6)
    ap.add_argument("--scene", type=Path, default=ROOT / "data" / "m6_corpus.h5")
    ap.add_argument("--wd", type=float, nargs="+", default=[1e-5, ResidualConfig.wd])
    ap.add_argument("--seed", type=int, default=ResidualConfig.seed)
    ap.add_argument("--epochs", type=int, default=ResidualConfig.epochs)
    a = ap.parse_args(argv)
    if not a.scene.exists():
        print(f"residual_paintings: no scene {a.scene} (make data)", file=sys.stderr)
        return 2
    try:
        compare_decays(CompiledFit(a.instrument), a.scene, a.wd,
                       ResidualConfig(seed=a.seed, epochs=a.epochs),
                       out=lambda line: print(line, flush=True))
    except ValueError as e:
        print(f"residual_paintings: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
