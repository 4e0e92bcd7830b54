"""The element-map network's own training step, target scale and artifact record: what
`train default` (the linear+MLP the edge serves) and `train lab` (an MLP on PyMca labels)
share, below both so neither imports the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from proto.elements import ELEMENTS, MAP_UNITS
from training import models
from training.config import DEFAULT, TrainConfig
from training.loop import fit, resample_dwell
from training.preprocess import MODEL_GRID


def element_scale(y: np.ndarray) -> np.ndarray:
    """Per-element RMS of the training targets (so each map weighs alike in the loss)."""
    return np.maximum(np.sqrt((y.astype(np.float64) ** 2).mean(axis=0)), 1e-3).astype(np.float32)


def train_element_net(model: models.Model, rates: np.ndarray, y: np.ndarray, *, epochs: int,
                      desc: str, augment: bool = False, cfg: TrainConfig = DEFAULT
                      ) -> list[float]:
    """rates: counts/s (N, D); y: counts/s (N, E); L2 on scaled maps, dwell augmentation."""
    xt = torch.from_numpy(rates)
    yt = torch.from_numpy((y / model.out_scale.numpy()).astype(np.float32))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    params = [p for n, p in model.named_parameters()
              if not n.startswith("pre.") and p.requires_grad]

    def batch_loss(idx):
        model.train()
        x = resample_dwell(xt[idx], gen, cfg.dwell_aug, cfg.dwell_aug_p) if augment else xt[idx]
        return ((model.scaled(x) - yt[idx]) ** 2).mean()

    hist = fit(params, batch_loss, len(rates), epochs=epochs, batch=cfg.el_batch, lr=cfg.el_lr,
               wd=cfg.el_wd, desc=desc, seed=cfg.seed)
    model.eval()
    return hist


def element_info(train_name: str, train_path: str | Path, n: int, metrics: dict,
                 outputs: tuple[str, ...] = ELEMENTS,
                 targets: str = "ground truth maps", **extra) -> dict:
    return {"kind": "elements", "grid": MODEL_GRID.to_dict(), "outputs": list(outputs),
            "units": MAP_UNITS, "train_data": {"scene": train_name, "path": str(train_path),
                                               "spectra": n, "targets": targets},
            "metrics": metrics, **extra}
