"""The element residual on paintings it never saw: each painting (panel) of a simulated corpus
scored by a residual trained on the others, for the default recipe, each variant given and the
ensemble the bundle serves (training.residual_ensemble: the mean of its members' residuals);
optionally the same recipes trained on the whole corpus and scored on a held-out scene.

    python scripts/residual_paintings.py [--instrument training/instruments/m6_jetstream.toml]
        [--scene data/m6_corpus.h5] [--variant wd=1e-5 ...] [--seed 0] [--epochs 4]
        [--test data/m6_ioannis.h5]

A variant sets fields of training.residual.ResidualConfig over the default recipe:
`--variant wd=1e-5`, `--variant epochs=30`, `--variant linear_wd=0,ridge=1e-3` (one column
each; default: wd=1e-05, the decay the residual had before 1.0). The fast fit runs once over the
scene (training.residual.prepare); then, per painting and recipe, train_prepared with that
painting held out and no refit on all pixels. The epoch and the elements the residual serves are
chosen on the scored painting itself, the same way for every recipe, so the columns compare the
recipes, not the choice. Cells: held-out relative RMSE against the simulator's truth; an element
a painting lacks (truth mean < 1 c/s) is left out. Then: in how many cells each recipe alone has
the least error at three decimals, and how many are tied (where the residual serves no element,
every recipe ties). With --test, each recipe is trained as `make train` trains the bundle (the
panels' last rows choose, then a refit on every pixel) and scored on the test scene with the
residual on every pixel (the edge's domain gate is left out): relative RMSE and Pearson r.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.element_bundle import CompiledFit  # noqa: E402
from training.metrics import element_errors  # noqa: E402
from training.residual import (  # noqa: E402
    Prepared,
    ResidualConfig,
    ResidualNet,
    feature_layout,
    prepare,
    residual_of,
    train_with_held_out,
)
from training.residual_ensemble import ResidualEnsemble, combine, members  # noqa: E402
from training.scan_rates import ScanRates  # noqa: E402

M6 = ROOT / "training" / "instruments" / "m6_jetstream.toml"
DEFAULT, ENSEMBLE = "default", "ensemble"


def variant(text: str, base: ResidualConfig) -> ResidualConfig:
    """'wd=1e-5,epochs=30' -> base with those fields (each parsed as its default's type)."""
    fields = [f.name for f in dataclasses.fields(ResidualConfig)]
    changes: dict[str, object] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in fields:
            raise ValueError(f"variant {text!r}: {key!r} is not a ResidualConfig field "
                             f"({', '.join(fields)})")
        default = getattr(base, key)
        if isinstance(default, tuple):  # the feature layout: one for every recipe compared
            raise ValueError(f"variant {text!r}: {key} is the same for every recipe here")
        try:
            if value.lower() == "none":
                changes[key] = None
            elif isinstance(default, bool):
                changes[key] = {"true": True, "false": False}[value.lower()]
            else:
                changes[key] = (int if isinstance(default, int) else float)(value)
        except (KeyError, ValueError, TypeError):
            like = "true or false" if isinstance(default, bool) else f"a number like {default!r}"
            raise ValueError(f"variant {text!r}: {key} takes {like} (or none), "
                             f"not {value!r}") from None
    return dataclasses.replace(base, **changes)


def recipes(texts: list[str], base: ResidualConfig) -> dict[str, ResidualConfig]:
    return {DEFAULT: base, **{t: variant(t, base) for t in texts}}


def shared_layout(fit: CompiledFit, cfgs: dict[str, ResidualConfig]) -> tuple[int, int, int]:
    """The features every recipe reads (a variant cannot change them: `variant`)."""
    base = cfgs[DEFAULT]
    return feature_layout(fit.grid, base.feature_kev, base.feature_bin_kev)


def train_all(p: Prepared, layout: tuple[int, int, int], held: np.ndarray,
              outputs: tuple[str, ...], cfgs: dict[str, ResidualConfig], refit: bool
              ) -> dict[str, tuple[ResidualNet | ResidualEnsemble, dict]]:
    """Each recipe, then the ensemble of the default's members (each recipe trained once)."""
    done: dict[ResidualConfig, tuple] = {}

    def trained(c: ResidualConfig) -> tuple:
        c = dataclasses.replace(c, refit_all=refit)
        if c not in done:
            done[c] = train_with_held_out(p, layout, held_out=held, outputs=outputs,
                                          progress=False, cfg=c)
        return done[c]

    runs = {name: trained(c)[:2] for name, c in cfgs.items()}
    runs[ENSEMBLE] = combine([trained(c) for c in members(cfgs[DEFAULT])], p, held, outputs)
    return runs


def compare_recipes(fit: CompiledFit, scene: Path, cfgs: dict[str, ResidualConfig],
                    out=print) -> tuple[list[int], Prepared]:
    """Print the painting table (module docstring) through `out`; returns (per recipe, in how
    many cells it alone has the least error at three decimals, then the number of ties;
    the scene prepared)."""
    t0 = time.perf_counter()
    scan = ScanRates(scene, fit.grid)
    masks = scan.paintings()
    if len(masks) < 2:
        raise ValueError(f"{scene.name} states {len(masks)} painting(s); holding one out "
                         "needs two or more")
    layout = shared_layout(fit, cfgs)
    truth = scan.truth(fit.outputs)
    p = prepare(fit, scan, scan.live, truth, layout)
    out(f"{scene.name}: {len(scan)} spectra, {len(masks)} paintings; fast fit "
        f"{time.perf_counter() - t0:.0f} s")
    names = [*cfgs, ENSEMBLE]
    out("| painting | element | fast fit | " + " | ".join(names) + " |")
    out("|---|---|---|" + "---|" * len(names))
    wins = [0] * (len(names) + 1)  # the last: cells where two or more tie
    for painting, mask in masks.items():
        runs = [m["held_out"] for _, m in
                train_all(p, layout, mask, fit.outputs, cfgs, refit=False).values()]
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
    return wins, p


def score_on(fit: CompiledFit, scene: Path, p: Prepared, held_out: np.ndarray, test: Path,
             cfgs: dict[str, ResidualConfig], out=print) -> dict[str, list[dict]]:
    """Each recipe trained on all of `p` as the bundle is, scored on `test` (module docstring);
    returns per recipe its per-element errors (element_errors), in fit.outputs order."""
    t0 = time.perf_counter()
    layout = shared_layout(fit, cfgs)
    ts = ScanRates(test, fit.grid)
    truth = ts.truth(fit.outputs)
    q = prepare(fit, ts, ts.live, truth, layout)
    scores = {"fast fit": [element_errors(truth[:, j], q.areas[:, j])
                           for j in range(len(fit.outputs))]}
    for name, (net, _) in train_all(p, layout, held_out, fit.outputs, cfgs, True).items():
        pred = q.areas + residual_of(net, q)
        scores[name] = [element_errors(truth[:, j], pred[:, j]) for j in range(len(fit.outputs))]
    out(f"trained on {scene.name}, scored on {test.name} ({len(ts)} spectra, residual on every "
        f"pixel; {time.perf_counter() - t0:.0f} s)")
    out("| recipe | metric | " + " | ".join(fit.outputs) + " |")
    out("|---|---|" + "---|" * len(fit.outputs))
    for metric in ("rel_rmse", "pearson_r"):
        for name, row in scores.items():
            out(f"| {name} | {metric} | " + " | ".join(f"{e[metric]:.3f}" for e in row) + " |")
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instrument", type=Path, default=M6)
    ap.add_argument("--scene", type=Path, default=ROOT / "data" / "m6_corpus.h5")
    ap.add_argument("--variant", nargs="+", default=["wd=1e-05"])
    ap.add_argument("--seed", type=int, default=ResidualConfig.seed)
    ap.add_argument("--epochs", type=int, default=ResidualConfig.epochs)
    ap.add_argument("--test", type=Path, help="a held-out scene to score each recipe on")
    a = ap.parse_args(argv)
    missing = [s for s in (a.scene, a.test) if s is not None and not s.exists()]
    if missing:
        print(f"residual_paintings: no scene {missing[0]} (make data)", file=sys.stderr)
        return 2
    say = functools.partial(print, flush=True)
    try:
        cfgs = recipes(a.variant, ResidualConfig(seed=a.seed, epochs=a.epochs))
        fit = CompiledFit(a.instrument)
        _, p = compare_recipes(fit, a.scene, cfgs, out=say)
        if a.test is not None:
            held = ScanRates(a.scene, fit.grid).held_out()
            score_on(fit, a.scene, p, held, a.test, cfgs, out=say)
    except ValueError as e:
        print(f"residual_paintings: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
