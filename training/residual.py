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

API (what `make calibrate` and export.element_bundle call; training-only: the fast fit comes
in as a function, so this module never imports export):

    FitFn: (rates (n, C) counts/s on the bundle grid, live_time_s (n,)) -> (areas, sigma),
           each (n, G) counts/s, in the bundle's output order
    net, metrics = train_residual(fit, rates, live_time_s, targets, held_out=0.2, cfg=...)
        rates: (N, C) float32 counts per live second on the bundle grid, or any object with
        len() and row slicing returning that (ScanRates reads a dataset file block by block);
        targets: (N, G) counts/s; held_out: (N,) bool mask or the last fraction of the pixels
        (scan order: a band of rows). metrics: per element, held-out relative RMSE and r of the
        fast fit alone and with the residual, and whether the residual was kept.
    served(net, areas, sigma, rates, in_domain) -> (N, 2G) the bundle's columns
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from proto.dataset import open_dataset
from proto.energy import EnergyGrid, Rebinner, counts_per_live_second
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
    epochs: int = 8  # at most; the best held-out epoch is kept
    batch: int = 256
    lr: float = 2e-3
    wd: float = 1e-5
    ridge: float = 1e-2  # linear branch, relative to the mean diagonal of X'X
    seed: int = 0
    threads: int = 2
    keep_gain: float = 0.01  # keep an element's residual if it lowers held-out RMSE by >= 1 %
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
    """(rates on the bundle grid, fast-fit areas, sigma) -> residual (N, G) counts/s:
    linear(binned rates, areas) + MLP(sqrt features, areas, sigma), in units of each output's
    RMS, times `keep` (0 for elements whose held-out error the residual did not lower)."""

    def __init__(self, start: int, stop: int, bin: int, outputs: int, hidden: int = 256) -> None:
        super().__init__()
        self.start, self.stop, self.bin = int(start), int(stop), int(bin)
        self.outputs, self.hidden = int(outputs), int(hidden)
        f, g = self.features, self.outputs
        self.register_buffer("mean", torch.zeros(f))
        self.register_buffer("inv_scale", torch.ones(1))
        self.register_buffer("inv_rate_scale", torch.ones(1))
        self.register_buffer("out_scale", torch.ones(g))
        self.register_buffer("keep", torch.ones(g))
        self.linear = nn.Linear(f + g, g)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.linear.requires_grad_(False)
        self.body = Stack([f + 2 * g, hidden, g])

    @property
    def features(self) -> int:
        return (self.stop - self.start) // self.bin

    def binned(self, rates: torch.Tensor) -> torch.Tensor:
        x = rates[:, self.start:self.stop]
        return x.reshape(x.shape[0], self.features, self.bin).sum(-1)

    def scaled(self, binned: torch.Tensor, areas: torch.Tensor, sigma: torch.Tensor
               ) -> torch.Tensor:
        """The residual in units of out_scale, before `keep` (what training fits)."""
        a, s = areas / self.out_scale, sigma / self.out_scale
        f = (torch.sqrt(torch.relu(binned)) - self.mean) * self.inv_scale
        lin = self.linear(torch.cat([binned * self.inv_rate_scale, a], dim=1))
        return lin + self.body(torch.cat([f, a, s], dim=1))

    def forward(self, rates: torch.Tensor, areas: torch.Tensor, sigma: torch.Tensor
                ) -> torch.Tensor:
        return self.scaled(self.binned(rates), areas, sigma) * self.out_scale * self.keep

    def arch(self) -> dict:
        return {"start": self.start, "stop": self.stop, "bin": self.bin,
                "outputs": self.outputs, "hidden": self.hidden}

    @classmethod
    def from_arch(cls, **args) -> ResidualNet:
        return cls(**args)


class ScanRates:
    """A dataset file's pixels as counts per live second on `grid`, read block by block
    (an M6 corpus is 4 GB as float32 on its own grid): len(), rows[a:b], .live, .truth."""

    def __init__(self, path: str | Path, grid: EnergyGrid) -> None:
        self.path, self.grid = Path(path), grid
        with open_dataset(self.path) as ds:
            self.shape = ds.shape
            self.live = np.asarray(ds.live_time_s, np.float64).reshape(-1)
            maps = ds.element_maps or {}
            self.maps = {k: np.asarray(v, np.float32).reshape(-1) for k, v in maps.items()}
            self._rebin = Rebinner(ds.grid, grid)

    def truth(self, outputs: tuple[str, ...]) -> np.ndarray:
        """(N, G) the file's ground-truth maps in `outputs` order (0 where absent)."""
        n = len(self)
        return np.stack([self.maps.get(e, np.zeros(n, np.float32)) for e in outputs], axis=1)

    def __len__(self) -> int:
        return int(self.shape[0] * self.shape[1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        a, b, _ = rows.indices(len(self))
        w, c = self.shape[1], self.shape[2]
        y0, y1 = a // w, -(-b // w)
        with open_dataset(self.path) as ds:
            block = np.asarray(ds.counts[y0:y1]).reshape(-1, c)[a - y0 * w:b - y0 * w]
        live = np.maximum(self.live[a:b], 1e-12)
        return counts_per_live_second(block, live, self._rebin)


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
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i in range(0, n, chunk):
        x = np.asarray(rates[i:i + chunk], np.float32)
        areas, sigma = fit(x, live[i:i + chunk])
        binned = x[:, start:stop].reshape(len(x), -1, b).sum(-1, dtype=np.float32)
        parts.append((binned, np.asarray(areas, np.float32), np.asarray(sigma, np.float32)))
    binned, areas, sigma = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return Prepared(binned, areas, sigma, live.astype(np.float32),
                    np.asarray(targets, np.float32))


def _held_mask(n: int, held_out: np.ndarray | float) -> np.ndarray:
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
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    w = np.linalg.solve(gram, xc.T @ (t - t_mean))
    with torch.no_grad():
        net.linear.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
        net.linear.bias.copy_(torch.from_numpy((t_mean - x_mean @ w).astype(np.float32)))


@torch.no_grad()
def _residual(net: ResidualNet, p: Prepared, idx: np.ndarray, batch: int = 8192) -> np.ndarray:
    """(len(idx), G) net(...) * out_scale without keep (what the decision compares)."""
    net.eval()
    out = []
    for i in range(0, len(idx), batch):
        j = idx[i:i + batch]
        out.append((net.scaled(torch.from_numpy(p.binned[j]), torch.from_numpy(p.areas[j]),
                               torch.from_numpy(p.sigma[j])) * net.out_scale).numpy())
    return np.concatenate(out)


def element_table(truth: np.ndarray, pred: np.ndarray, outputs) -> dict[str, dict]:
    return {e: element_errors(truth[:, j], pred[:, j]) for j, e in enumerate(outputs)}


def _train_body(net: ResidualNet, tensors: list[torch.Tensor], goal: torch.Tensor,
                tr: np.ndarray, ho: np.ndarray, cfg: ResidualConfig, progress: bool
                ) -> list[float]:
    """AdamW with a cosine decay over cfg.epochs on the MLP (the linear branch is closed
    form); after each epoch the held-out loss, and the best epoch's weights are kept."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(net.body.parameters(), lr=cfg.lr, weight_decay=cfg.wd)
    steps = cfg.epochs * -(-len(tr) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    tr_t, held = torch.from_numpy(tr), [t[torch.from_numpy(ho)] for t in (*tensors, goal)]
    best, best_loss, history = None, math.inf, []
    for epoch in range(cfg.epochs):
        net.train()
        perm = tr_t[torch.randperm(len(tr), generator=gen)]
        for i in range(0, len(tr), cfg.batch):
            j = perm[i:i + cfg.batch]
            loss = ((net.scaled(*(t[j] for t in tensors)) - goal[j]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            held_loss = float(((net.scaled(*held[:3]) - held[3]) ** 2).mean())
        history.append(held_loss)
        if progress:
            print(f"residual epoch {epoch + 1}/{cfg.epochs}: held-out loss {held_loss:.4f}",
                  flush=True)
        if held_loss < best_loss:
            best_loss, best = held_loss, {k: v.clone() for k, v in net.state_dict().items()}
    if best is not None:
        net.load_state_dict(best)
    net.eval()
    return history


def train_residual(fit: FitFn, rates: np.ndarray | SpectraRows, live_time_s: np.ndarray,
                   targets: np.ndarray, *, held_out: np.ndarray | float = 0.2,
                   outputs: tuple[str, ...] | None = None, grid: EnergyGrid,
                   cfg: ResidualConfig = ResidualConfig(), progress: bool = True
                   ) -> tuple[ResidualNet, dict]:
    """Train the residual on the training pixels, choose the epoch and the elements on the
    held-out ones (module docstring). `grid`: the bundle grid `rates` are on; `outputs`: the
    fit's column names (for the metrics). Returns (net in eval mode, metrics)."""
    setup(cfg.seed, cfg.threads)
    layout = feature_layout(grid, cfg.feature_kev, cfg.feature_bin_kev)
    p = prepare(fit, rates, live_time_s, targets, layout)
    g = p.areas.shape[1]
    outputs = tuple(outputs or (f"out{j}" for j in range(g)))
    held = _held_mask(len(p.live), held_out)
    tr, ho = np.nonzero(~held)[0], np.nonzero(held)[0]
    net = ResidualNet(*layout, outputs=g, hidden=cfg.hidden)
    roots = np.sqrt(np.maximum(p.binned[tr], 0.0, dtype=np.float32))
    mean = roots.mean(axis=0)
    scale = max(float(np.sqrt(((roots - mean) ** 2).mean())), SCALE_FLOOR)
    rms_rate = max(float(np.sqrt(np.mean(p.binned[tr].astype(np.float64) ** 2))), 1e-6)
    out_scale = np.maximum(np.sqrt((p.targets[tr].astype(np.float64) ** 2).mean(axis=0)), 1e-3)
    with torch.no_grad():
        net.mean.copy_(torch.from_numpy(mean))
        net.inv_scale.fill_(1.0 / scale)
        net.inv_rate_scale.fill_(1.0 / rms_rate)
        net.out_scale.copy_(torch.from_numpy(out_scale.astype(np.float32)))
    _fit_linear(net, p, tr, cfg.ridge)

    tensors = [torch.from_numpy(a) for a in (p.binned, p.areas, p.sigma)]
    goal = torch.from_numpy(((p.targets - p.areas) / out_scale).astype(np.float32))
    history = _train_body(net, tensors, goal, tr, ho, cfg, progress)
    res = _residual(net, p, ho)
    fit_only = element_table(p.targets[ho], p.areas[ho], outputs)
    with_res = element_table(p.targets[ho], p.areas[ho] + res, outputs)
    keep = np.array([with_res[e]["rmse"] <= (1 - cfg.keep_gain) * fit_only[e]["rmse"]
                     for e in outputs], np.float32)
    with torch.no_grad():
        net.keep.copy_(torch.from_numpy(keep))
    metrics = {
        "held_out": {"spectra": len(ho), "train_spectra": len(tr),
                     "fast_fit": fit_only, "fast_fit+residual": with_res},
        "residual_kept": {e: bool(k) for e, k in zip(outputs, keep, strict=True)},
        "live_time_s": [float(p.live[tr].min()), float(p.live[tr].max())],
        "epochs_held_out_loss": history, "config": cfg.to_dict(),
    }
    return net, metrics


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
