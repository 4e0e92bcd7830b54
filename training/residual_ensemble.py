"""The served element residual: the mean of residual MLPs trained with different recipes
(training.residual), each on the same pixels, each choosing its own epoch and elements.

Why a mean: trained on m6_corpus and scored on m6_ioannis at 10 ms, each recipe alone closes
some elements and opens others (README, "Where the models stand": the default has Ca 0.195
against linear+mlp's 0.161; its linear branch trained with the MLP, 0.141 but Fe 0.097 against
0.091; a 30-epoch schedule, 0.147 but Fe 0.094 and Pb 0.339). Their errors differ, so their
mean has less variance than any of them; `python scripts/residual_paintings.py` scores it on
each painting the residual never saw beside its members.

    ens, metrics = train_ensemble(fit, rates, live_time_s, targets, held_out=mask,
                                  outputs=names, grid=grid, cfg=ResidualConfig())
        # as training.residual.train_residual, for the members(cfg): base, its linear branch
        # trained, a longer schedule; train_prepared(p, layout, ..., cfgs=...) on prepared
        # pixels; combine(trained, p, mask, names) for members already trained

Per element the mean is over the members whose own held-out pixels kept it; the ensemble serves
the element only if that mean lowers the held-out error by cfg.keep_gain (1 %) or more.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from proto.energy import EnergyGrid
from training.models import build, model_args, register
from training.residual import (
    FitFn,
    Prepared,
    ResidualConfig,
    ResidualNet,
    SpectraRows,
    element_table,
    feature_layout,
    held_mask,
    prepare,
    train_with_held_out,
)

LONG_SCHEDULE = 7.5  # the third member's epochs over the base's: 4 -> 30
Trained = tuple[ResidualNet, dict, np.ndarray]  # train_with_held_out's (net, metrics, held)


def members(base: ResidualConfig) -> list[ResidualConfig]:
    """The recipes averaged: `base`; its linear branch trained with the MLP, without decay
    (as linear+mlp's); a one-cycle schedule LONG_SCHEDULE times longer."""
    return [base, dataclasses.replace(base, linear_wd=0.0),
            dataclasses.replace(base, epochs=max(1, round(base.epochs * LONG_SCHEDULE)))]


@register
class ResidualEnsemble(nn.Module):
    """sum over members of weight[m] x member m's residual (N, G) counts/s; `weight` (M, G)
    is 1/k for each of the k members that serve an element the ensemble serves, else 0."""

    def __init__(self, members: list[ResidualNet]) -> None:
        super().__init__()
        if not members or len({(m.start, m.stop, m.bin, m.outputs) for m in members}) != 1:
            raise ValueError("an ensemble needs members reading the same features and "
                             "writing the same outputs")
        self.members = nn.ModuleList(members)
        self.register_buffer("weight", torch.zeros(len(members), members[0].outputs))

    @property
    def serves(self) -> torch.Tensor:
        """(G,) bool: the elements this residual changes."""
        return (self.weight > 0).any(dim=0)

    def parts(self) -> list[tuple[ResidualNet, torch.Tensor]]:
        """[(member, weight (G,) on its output)]: what the bundle graph computes."""
        return [(m, self.weight[i]) for i, m in enumerate(self.members)]

    def forward(self, rates: torch.Tensor, areas: torch.Tensor, sigma: torch.Tensor
                ) -> torch.Tensor:
        return self.from_binned(self.members[0].binned(rates), areas, sigma)

    def from_binned(self, binned: torch.Tensor, areas: torch.Tensor, sigma: torch.Tensor
                    ) -> torch.Tensor:
        return sum(w * m.from_binned(binned, areas, sigma) for m, w in self.parts())

    def arch(self) -> dict:
        return {"members": [model_args(m) for m in self.members]}

    @classmethod
    def from_arch(cls, members: list[dict]) -> ResidualEnsemble:
        return cls([build(m) for m in members])


def combine(trained: list[Trained], p: Prepared, held_out: np.ndarray | float,
            outputs: tuple[str, ...], keep_gain: float = ResidualConfig.keep_gain
            ) -> tuple[ResidualEnsemble, dict]:
    """The ensemble of members trained on `p` with these held-out pixels (module docstring);
    metrics as training.residual's, plus each member's."""
    held = held_mask(len(p.live), held_out)
    truth, areas = p.targets[held].astype(np.float64), p.areas[held].astype(np.float64)
    keep = np.stack([net.keep.numpy() for net, _, _ in trained])  # (M, G)
    count = np.maximum(keep.sum(axis=0), 1.0)
    mean = sum(res.astype(np.float64) for _, _, res in trained) / count  # 0 where none keeps
    none = np.sqrt(((areas - truth) ** 2).mean(axis=0))
    err = np.sqrt(((areas + mean - truth) ** 2).mean(axis=0))
    serve = (keep.sum(axis=0) > 0) & (err <= (1 - keep_gain) * none)
    ens = ResidualEnsemble([net for net, _, _ in trained])
    with torch.no_grad():
        ens.weight.copy_(torch.from_numpy((keep * serve / count).astype(np.float32)))
    first = trained[0][1]
    metrics = {
        "held_out": {**{k: first["held_out"][k] for k in ("spectra", "train_spectra")},
                     "fast_fit": element_table(truth, areas, outputs),
                     "fast_fit+residual": element_table(truth, areas + mean * serve, outputs)},
        "residual_kept": {e: bool(s) for e, s in zip(outputs, serve, strict=True)},
        "members": [{"config": m["config"], "epochs": m["epochs"],
                     "residual_kept": m["residual_kept"],
                     "held_out": m["held_out"]["fast_fit+residual"]} for _, m, _ in trained],
        **{k: first[k] for k in ("refit_on_all_pixels", "live_time_s")},
    }
    return ens.eval(), metrics


def train_ensemble(fit: FitFn, rates: np.ndarray | SpectraRows, live_time_s: np.ndarray,
                   targets: np.ndarray, *, held_out: np.ndarray | float = 0.2,
                   outputs: tuple[str, ...], grid: EnergyGrid,
                   cfg: ResidualConfig | None = None, progress: bool = True
                   ) -> tuple[ResidualEnsemble, dict]:
    """training.residual.train_residual for the ensemble of members(cfg): one fast fit of
    every pixel, then each member trained and the whole combined."""
    cfg = cfg or ResidualConfig()
    layout = feature_layout(grid, cfg.feature_kev, cfg.feature_bin_kev)
    return train_prepared(prepare(fit, rates, live_time_s, targets, layout), layout,
                          held_out=held_out, outputs=outputs, cfgs=members(cfg),
                          progress=progress)


def train_prepared(p: Prepared, layout: tuple[int, int, int], *,
                   held_out: np.ndarray | float = 0.2, outputs: tuple[str, ...],
                   cfgs: list[ResidualConfig], progress: bool = True
                   ) -> tuple[ResidualEnsemble, dict]:
    """Each recipe of `cfgs` trained on `p` (training.residual.train_with_held_out), then
    combined."""
    trained = []
    for i, cfg in enumerate(cfgs):
        if progress:
            print(f"residual member {i + 1}/{len(cfgs)}", flush=True)
        trained.append(train_with_held_out(p, layout, held_out=held_out, outputs=outputs,
                                           cfg=cfg, progress=progress))
    return combine(trained, p, held_out, outputs, cfgs[0].keep_gain)
