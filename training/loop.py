"""The training loop every torch model here goes through, and the one way to run a model.

    setup(seed, threads)   fixed seeds, explicit torch threads (two cores: torch, numpy's BLAS
                           and ONNX Runtime must not fight over them)
    fit(params, batch_loss, n, ...)   AdamW + one-cycle schedule over shuffled minibatches
    predict(model, rates)  float32 (N, K) in eval mode, in batches (export's parity reference
                           too, so the framework answer is computed one way only)
    resample_dwell(...)    Poisson re-counting at a shorter dwell (augmentation)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm


def setup(seed: int = 0, threads: int = 2) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)


def fit(params: Iterable[nn.Parameter], batch_loss: Callable[[torch.Tensor], torch.Tensor],
        n: int, *, epochs: int, batch: int, lr: float, wd: float, desc: str,
        seed: int = 0) -> list[float]:
    """AdamW + one-cycle decay over shuffled minibatches; batch_loss(idx) -> scalar loss.
    Returns the mean loss of each epoch."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    history: list[float] = []
    bar = tqdm(total=steps, desc=desc, unit="step", leave=False, mininterval=1.0)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        running, count = 0.0, 0
        for i in range(0, n, batch):
            loss = batch_loss(perm[i:i + batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running, count = running + float(loss.detach()), count + 1
            bar.update()
            bar.set_postfix(loss=f"{running / count:.4f}", refresh=False)
        history.append(running / max(count, 1))
    bar.close()
    return history


@torch.no_grad()
def predict(model: nn.Module, rates: np.ndarray, batch: int = 4096) -> np.ndarray:
    """float32 (N, K) outputs of `model` (eval mode) on (N, D) counts/s."""
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(rates[i:i + batch], np.float32))).numpy()
           for i in range(0, len(rates), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def resample_dwell(rates: torch.Tensor, gen: torch.Generator, dwell: tuple[float, float],
                   p: float) -> torch.Tensor:
    """Poisson-resample a fraction `p` of counts/s rows to a random dwell in `dwell` (s,
    log-uniform): what short-dwell spectra look like.

    counts' ~ Poisson(rate * t) is exact for t much shorter than the recorded dwell
    (the recorded spectrum's own noise is then negligible)."""
    n = rates.shape[0]
    lo, hi = np.log(dwell[0]), np.log(dwell[1])
    t = torch.exp(lo + (hi - lo) * torch.rand(n, 1, generator=gen))
    pick = torch.rand(n, 1, generator=gen) < p
    noisy = torch.poisson(rates.clamp(min=0) * t, generator=gen) / t
    return torch.where(pick, noisy, rates)
