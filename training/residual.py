"""The element model's learned part: a residual on PyMca's compiled fast fit (issue 13 item 2).

The served element map is `areas + gate * residual`: `areas` (and their counting-statistics
`sigma`) come from the fast fit compiled from the instrument's description (export.fastfit,
nothing learned); the residual is the study's one-hidden-layer MLP plus a closed-form linear
branch, trained on what the fast fit misses against the training targets (simulated ground
truth, or PyMca's full fit of a lab's long-dwell scans). `gate` is 1 only where the pixel is
inside the element model's training domain as the edge decides it (proto.domain.residual_gate:
the in-domain subspace test, and a live time within the training's dwells: a residual learned
at 10 ms has nothing to say about a 100 ms pixel, whose fast fit is already 3x less noisy).
The residual is kept only for the elements whose held-out error it lowers (`ResidualNet.keep`).
The bundle serves the mean of several, trained with different recipes (training.residual_ensemble).

API (what `make calibrate` and export.element_bundle call; training-only: the fast fit comes
in as a function, so this module never imports export):

    FitFn: (rates (n, C) counts/s on the bundle grid, live_time_s (n,)) -> (areas, sigma),
           each (n, G) counts/s, in the bundle's output order
    net, metrics = train_residual(fit, rates, live_time_s, targets, held_out=0.2, cfg=...)
    net, metrics = train_prepared(prepare(fit, rates, ...), layout, ...)  # one fit, many runs
        rates: (N, C) float32 counts per live second on the bundle grid, or any object with
        len() and row slicing returning that (training.scan_rates.ScanRates: a dataset file);
        targets: (N, G) counts/s; held_out: (N,) bool mask or the last fraction of the pixels
        (scan order: a band of rows; training.scan_rates.ScanRates.held_out: a scene's last
        panel). metrics: per element, held-out relative RMSE and r of the fast fit alone and
        with the residual, and whether the residual serves it.
    net, metrics, held = train_with_held_out(p, layout, held_out, ...)  # + held-out residual
    served(net, areas, sigma, rates, in_domain) -> (N, 2G) the bundle's columns
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from proto.energy import EnergyGrid
from training.loop import setup
from training.metrics import element_errors
from training.models import Stack, register

FitFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
FEATURE_KEV = (1.0, 20.5)  # the study's features: 0-20 keV; below 1 keV air leaves nothing
FEATURE_BIN_KEV = 0.02  # 20 eV features, as the study's MLP (training.preprocess.MODEL_GRID)
CHUNK = 4096  # spectra per fast-fit call while preparing the training set
SCALE_FLOOR = 1e-3


class SpectraRows(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, rows: slice) -> np.ndarray: ...


@dataclass(frozen=True)
class ResidualConfig:
    hidden: int = 256  # the study's one hidden layer
    epochs: int = 4  # the one-cycle schedule's length; each MLP's best held-out epoch is kept
    batch: int = 256
    lr: float = 2e-3
    # AdamW's decoupled decay, strong: the residual must hold on paintings it never saw, not
    # learn the training scene's mixtures (scripts/residual_paintings.py: each m6_corpus
    # painting scored by a residual trained on the other three: 1.0 has the least error in 17
    # painting-elements, 1e-5 in 4, 8 tie)
    wd: float = 1.0
    ridge: float = 1e-2  # linear branch, relative to the mean diagonal of X'X
    # None: the linear branch keeps its closed form; a decay: it starts there and trains with
    # the MLP (as linear+mlp's). Off: see README "Where the models stand" for what 0 does
    linear_wd: float | None = None
    seed: int = 0
    threads: int = 2
    keep_gain: float = 0.01  # keep an element's residual if it lowers held-out RMSE by >= 1 %
    stats_spectra: int = 50_000  # feature statistics and the linear branch from <= this many
    refit_all: bool = True  # after choosing on the held-out pixels, train again on all
    feature_kev: tuple[float, float] = FEATURE_KEV
    feature_bin_kev: float = FEATURE_BIN_KEV

    def to_dict(self) -> dict:
        return asdict(self)


def feature_layout(grid: EnergyGrid, kev: tuple[float, float] = FEATURE_KEV,
                   bin_kev: float = FEATURE_BIN_KEV) -> tuple[int, int, int]:
    """(start, stop, bin) channels of `grid` summed `bin` at a time into the MLP's features."""
    b = max(1, round(bin_kev / grid.gain))
    start = max(0, math.ceil(grid.channel(kev[0])))
    stop = min(grid.channels, math.floor(grid.channel(kev[1])) + 1)
    n = (stop - start) // b
    if n < 1:
        raise ValueError(f"no features in {kev} keV on {grid}")
    return start, start + n * b, b


@register
class ResidualNet(nn.Module):
    """(rates on the bundle grid, fast-fit areas, sigma) -> residual (N, G) counts/s.

    A closed-form linear branch on (binned rates, areas) and the study's one-hidden-layer MLP
    `body` on the sqrt features, on what the branch leaves. Per element, held-out pixels
    choose whether it serves (`keep`: 0/1). In units of each output's RMS (`out_scale`).
    `sigma` is taken, unused, so that every residual is called alike (ResidualEnsemble).
    (A second MLP that also saw the fast fit's areas and sigma was measured and removed: on
    m6_ioannis at 10 ms it raised As and Pb above the fast fit alone, 0.89 and 0.51 against
    0.78 and 0.43, having learned the corpus's As/Pb mixtures.)"""

    def __init__(self, start: int, stop: int, bin: int, outputs: int, hidden: int = 256) -> None:
        super().__init__()
        self.start, self.stop, self.bin = int(start), int(stop), int(bin)
        self.outputs, self.hidden = int(outputs), int(hidden)
        f, g = self.features, self.outputs
        self.register_buffer("mean", torch.zeros(f))
        self.register_buffer("inv_scale", torch.ones(1))
        self.register_buffer("inv_rate_scale", torch.ones(1))
        self.register_buffer("out_scale", torch.ones(g))
        self.register_buffer("keep", torch.zeros(g))  # 1: the residual serves the element
        self.linear = nn.Linear(f + g, g)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.linear.requires_grad_(False)
        self.body = Stack([f, hidden, g])

    @property
    def features(self) -> int:
        return (self.stop - self.start) // self.bin

    def binned(self, rates: torch.Tensor) -> torch.Tensor:
        x = rates[:, self.start:self.stop]
        return x.reshape(x.shape[0], self.features, self.bin).sum(-1)

    @property
    def serves(self) -> torch.Tensor:
        """(G,) bool: the elements this residual changes."""
        return self.keep > 0

    def parts(self) -> list[tuple[ResidualNet, torch.Tensor]]:
        """[(net, weight (G,) on its output)]: what the bundle graph computes."""
        return [(self, torch.ones_like(self.keep))]

    def inputs(self, binned: torch.Tensor, areas: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(linear branch's, body's) inputs."""
        f = (torch.sqrt(torch.relu(binned)) - self.mean) * self.inv_scale
        return torch.cat([binned * self.inv_rate_scale, areas / self.out_scale], dim=1), f

    def forward(self, rates: torch.Tensor, areas: torch.Tensor, sigma: torch.Tensor
                ) -> torch.Tensor:
        return self.from_binned(self.binned(rates), areas, sigma)

    def from_binned(self, binned: torch.Tensor, areas: torch.Tensor, sigma: torch.Tensor
                    ) -> torch.Tensor:
        x_lin, f = self.inputs(binned, areas)
        return (self.linear(x_lin) + self.body(f)) * self.keep * self.out_scale

    def arch(self) -> dict:
        return {"start": self.start, "stop": self.stop, "bin": self.bin,
                "outputs": self.outputs, "hidden": self.hidden}

    @classmethod
    def from_arch(cls, **args) -> ResidualNet:
        return cls(**args)


@dataclass
class Prepared:
    """What training needs of every pixel, computed once: binned rates, fit, targets."""

    binned: np.ndarray  # (N, F) counts/s per feature bin
    areas: np.ndarray  # (N, G)
    sigma: np.ndarray  # (N, G)
    live: np.ndarray  # (N,)
    targets: np.ndarray  # (N, G)


def prepare(fit: FitFn, rates: np.ndarray | SpectraRows, live_time_s: np.ndarray,
            targets: np.ndarray, layout: tuple[int, int, int], chunk: int = CHUNK) -> Prepared:
    """Run the fast fit and bin the features, `chunk` spectra at a time."""
    start, stop, b = layout
    n = len(rates)
    live = np.asarray(live_time_s, np.float64).reshape(-1)
    binned = np.empty((n, (stop - start) // b), np.float32)  # filled in place: no copies
    areas = sigma = np.empty((0, 0), np.float32)
    for i in range(0, n, chunk):
        x = np.asarray(rates[i:i + chunk], np.float32)
        a, s = fit(x, live[i:i + chunk])
        if not i:
            areas, sigma = (np.empty((n, np.shape(a)[1]), np.float32) for _ in range(2))
        areas[i:i + len(x)], sigma[i:i + len(x)] = a, s
        binned[i:i + len(x)] = x[:, start:stop].reshape(len(x), -1, b).sum(-1)
    return Prepared(binned, areas, sigma, live.astype(np.float32),
                    np.asarray(targets, np.float32))


def held_mask(n: int, held_out: np.ndarray | float) -> np.ndarray:
    if isinstance(held_out, float | int) and not isinstance(held_out, bool):
        mask = np.zeros(n, bool)
        mask[n - max(1, round(n * float(held_out))):] = True
        return mask
    mask = np.asarray(held_out, bool).reshape(-1)
    if mask.shape != (n,) or mask.all() or not mask.any():
        raise ValueError("held_out must mark some, not all, of the pixels")
    return mask


def _fit_linear(net: ResidualNet, p: Prepared, idx: np.ndarray, ridge: float) -> None:
    """Closed-form ridge of the linear branch on (binned rates, areas) -> what the fit misses."""
    scale = net.out_scale.numpy().astype(np.float64)
    x = np.concatenate([p.binned[idx] * float(net.inv_rate_scale), p.areas[idx] / scale], axis=1)
    t = (p.targets[idx] - p.areas[idx]) / scale
    x_mean, t_mean = x.mean(axis=0), t.mean(axis=0)
    xc = x - x_mean
    gram = xc.T @ xc
    # ridge on the spectrum's columns only: the areas' own columns stay free, so the branch
    # can take back as much of the fast fit as the data say (a shrunk -1 would leave its noise)
    f = net.features
    gram[np.arange(f), np.arange(f)] += ridge * np.trace(gram[:f, :f]) / f
    w = np.linalg.solve(gram, xc.T @ (t - t_mean))
    with torch.no_grad():
        net.linear.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
        net.linear.bias.copy_(torch.from_numpy((t_mean - x_mean @ w).astype(np.float32)))


def _setup_net(p: Prepared, idx: np.ndarray, layout: tuple[int, int, int],
               cfg: ResidualConfig) -> ResidualNet:
    """A net with feature statistics, output scales and the linear branch from pixels `idx`."""
    net = ResidualNet(*layout, outputs=p.areas.shape[1], hidden=cfg.hidden)
    sub = idx[::max(1, len(idx) // cfg.stats_spectra)]  # bounds memory (float64 Gram)
    roots = np.sqrt(np.maximum(p.binned[sub], 0.0, dtype=np.float32))
    mean = roots.mean(axis=0)
    scale = max(float(np.sqrt(((roots - mean) ** 2).mean())), SCALE_FLOOR)
    rms_rate = max(float(np.sqrt(np.mean(p.binned[sub].astype(np.float64) ** 2))), 1e-6)
    out_scale = np.maximum(np.sqrt((p.targets[idx].astype(np.float64) ** 2).mean(axis=0)), 1e-3)
    with torch.no_grad():
        net.mean.copy_(torch.from_numpy(mean))
        net.inv_scale.fill_(1.0 / scale)
        net.inv_rate_scale.fill_(1.0 / rms_rate)
        net.out_scale.copy_(torch.from_numpy(out_scale.astype(np.float32)))
    _fit_linear(net, p, sub, cfg.ridge)
    return net


@torch.no_grad()
def _unkept(net: ResidualNet, p: Prepared, idx: np.ndarray, batch: int = 8192) -> np.ndarray:
    """(len(idx), G) residuals in counts/s of linear + body, every element."""
    net.eval()
    out = []
    for i in range(0, len(idx), batch):
        x_lin, f = net.inputs(*(torch.from_numpy(x[idx[i:i + batch]])
                                for x in (p.binned, p.areas)))
        out.append(((net.linear(x_lin) + net.body(f)) * net.out_scale).numpy())
    return np.concatenate(out)


def _train_body(net: ResidualNet, p: Prepared, idx: np.ndarray, cfg: ResidualConfig,
                 on_epoch: Callable[[int], None], progress: bool) -> None:
    """The MLP on what the linear branch leaves, AdamW + one-cycle over cfg.epochs;
    on_epoch(epoch) after each (evaluation, snapshots)."""
    t = [torch.from_numpy(x) for x in (p.binned, p.areas)]
    goal = torch.from_numpy(((p.targets - p.areas) / net.out_scale.numpy()).astype(np.float32))
    groups: list[dict] = [{"params": list(net.body.parameters())}]
    if cfg.linear_wd is not None:
        net.linear.requires_grad_(True)
        groups.append({"params": list(net.linear.parameters()), "weight_decay": cfg.linear_wd})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.wd)
    steps = cfg.epochs * -(-len(idx) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    idx_t = torch.from_numpy(idx)
    for epoch in range(cfg.epochs):
        net.train()
        perm = idx_t[torch.randperm(len(idx), generator=gen)]
        for i in range(0, len(idx), cfg.batch):
            j = perm[i:i + cfg.batch]
            x_lin, f = net.inputs(t[0][j], t[1][j])
            left = goal[j] - net.linear(x_lin)  # a gradient only with cfg.linear_wd
            loss = ((net.body(f) - left) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        if progress:
            print(f"residual epoch {epoch + 1}/{cfg.epochs}", flush=True)
        on_epoch(epoch)


def element_table(truth: np.ndarray, pred: np.ndarray, outputs) -> dict[str, dict]:
    return {e: element_errors(truth[:, j], pred[:, j]) for j, e in enumerate(outputs)}


def train_residual(fit: FitFn, rates: np.ndarray | SpectraRows, live_time_s: np.ndarray,
                   targets: np.ndarray, *, held_out: np.ndarray | float = 0.2,
                   outputs: tuple[str, ...] | None = None, grid: EnergyGrid,
                   cfg: ResidualConfig = ResidualConfig(), progress: bool = True
                   ) -> tuple[ResidualNet, dict]:
    """Train on the training pixels; on the held-out ones choose the epoch (least held-out
    error) and the elements the residual serves (module docstring); then,
    with cfg.refit_all, train again on every pixel and keep those epochs and choices.
    `grid`: the bundle grid `rates` are on; `outputs`: the fit's column names (metrics).
    Returns (net in eval mode, metrics: held-out errors of the fast fit alone and with the
    chosen residual, per element)."""
    layout = feature_layout(grid, cfg.feature_kev, cfg.feature_bin_kev)
    return train_prepared(prepare(fit, rates, live_time_s, targets, layout), layout,
                          held_out=held_out, outputs=outputs, cfg=cfg, progress=progress)


def train_prepared(p: Prepared, layout: tuple[int, int, int], *,
                   held_out: np.ndarray | float = 0.2, outputs: tuple[str, ...] | None = None,
                   cfg: ResidualConfig = ResidualConfig(), progress: bool = True
                   ) -> tuple[ResidualNet, dict]:
    """train_residual on pixels already `prepare`d (one fast fit for several trainings)."""
    net, metrics, _ = train_with_held_out(p, layout, held_out=held_out, outputs=outputs,
                                          cfg=cfg, progress=progress)
    return net, metrics


def train_with_held_out(p: Prepared, layout: tuple[int, int, int], *,
                        held_out: np.ndarray | float = 0.2,
                        outputs: tuple[str, ...] | None = None,
                        cfg: ResidualConfig = ResidualConfig(), progress: bool = True
                        ) -> tuple[ResidualNet, dict, np.ndarray]:
    """train_prepared, and the residual it chose on the held-out pixels (before the refit on
    every pixel: what training.residual_ensemble combines), (held-out pixels, G) counts/s."""
    setup(cfg.seed, cfg.threads)
    g = p.areas.shape[1]
    outputs = tuple(outputs or (f"out{j}" for j in range(g)))
    held = held_mask(len(p.live), held_out)
    tr, ho = np.nonzero(~held)[0], np.nonzero(held)[0]
    truth, areas = p.targets[ho].astype(np.float64), p.areas[ho].astype(np.float64)
    net = _setup_net(p, tr, layout, cfg)
    per_epoch: list[np.ndarray] = []  # held-out residuals after each epoch
    snaps: list[dict[str, dict]] = []  # the weights after each epoch

    def snapshot(epoch: int) -> None:  # `net` read at call time: the refit's too
        snaps.append({k: {n: v.clone() for n, v in getattr(net, k).state_dict().items()}
                      for k in ("linear", "body")})

    def record(epoch: int) -> None:
        per_epoch.append(_unkept(net, p, ho))
        snapshot(epoch)

    _train_body(net, p, tr, cfg, record, progress)
    mse = np.array([((areas + r - truth) ** 2).mean(axis=0) for r in per_epoch])
    best = int(np.argmin(mse.sum(axis=1)))
    none = ((areas - truth) ** 2).mean(axis=0)
    keep = np.sqrt(mse[best]) <= (1 - cfg.keep_gain) * np.sqrt(none)
    chosen = np.where(keep[None], per_epoch[best], 0.0)
    metrics = {
        "held_out": {"spectra": len(ho), "train_spectra": len(tr),
                     "fast_fit": element_table(truth, areas, outputs),
                     "fast_fit+residual": element_table(truth, areas + chosen, outputs)},
        "residual_kept": {e: bool(k) for e, k in zip(outputs, keep, strict=True)},
        "epochs": best + 1,
        "held_out_mse_by_epoch": mse.sum(axis=1).tolist(),
        "refit_on_all_pixels": bool(cfg.refit_all),
        "live_time_s": [float(p.live.min()), float(p.live.max())], "config": cfg.to_dict(),
    }
    if cfg.refit_all:  # the same recipe on every pixel, kept at the chosen epoch
        net = _setup_net(p, np.arange(len(p.live)), layout, cfg)
        snaps.clear()
        _train_body(net, p, np.arange(len(p.live)), cfg, snapshot, progress)
    net.linear.load_state_dict(snaps[best]["linear"])  # moved only with cfg.linear_wd
    net.linear.requires_grad_(False)
    net.body.load_state_dict(snaps[best]["body"])
    with torch.no_grad():
        net.keep.copy_(torch.from_numpy(keep.astype(np.float32)))
    return net.eval(), metrics, chosen.astype(np.float32)


@torch.no_grad()
def residual_of(net: ResidualNet, p: Prepared, batch: int = 8192) -> np.ndarray:
    """(N, G) the residual the net adds to `p`'s fast-fit areas, counts/s (every pixel)."""
    net.eval()
    return np.concatenate([
        net.from_binned(*(torch.from_numpy(x[i:i + batch]) for x in (p.binned, p.areas,
                                                                     p.sigma))).numpy()
        for i in range(0, len(p.live), batch)]) if len(p.live) else np.zeros_like(p.areas)


@torch.no_grad()
def served(net: ResidualNet | None, areas: np.ndarray, sigma: np.ndarray, rates: np.ndarray,
           in_domain: np.ndarray | None = None) -> np.ndarray:
    """(N, 2G) what the element bundle serves: areas + in_domain x residual, then sigma
    (`in_domain`: (N,) the edge's gate, proto.domain.residual_gate; None: everywhere)."""
    areas = np.asarray(areas, np.float32)
    if net is not None:
        res = net(torch.from_numpy(np.asarray(rates, np.float32)), torch.from_numpy(areas),
                  torch.from_numpy(np.asarray(sigma, np.float32))).numpy()
        if in_domain is not None:
            res = res * np.asarray(in_domain, np.float32).reshape(-1, 1)
        areas = areas + res
    return np.concatenate([areas, np.asarray(sigma, np.float32)], axis=1)
