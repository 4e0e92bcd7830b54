"""`python -m training.report --data data --out reports`: every model, every table, every figure.

Reproduces the study's two experiments on the simulated scenes and writes
reports/REPORT.md with small PNG figures:

1. spectra -> RGB: train on m1_virgin (targets: its photograph), test on
   m1_child: Lasso, kNN (k = 10), SVR, the encoder, the study's autoencoder
   over a sweep of c, and our MLP; R², CIEDE2000, and CIEDE2000 to the original
   colour in faded / over-painted regions. 1b (training.report.lab_rgb): the same models
   trained through a lab's path (camera photograph -> registration -> training.lab_rgb)
   against the aligned photograph.
2. spectra -> element maps: train on m6_corpus, test on m6_ioannis at 10 ms
   and 100 ms dwell: the study's MLP, our linear+MLP, a 1-D CNN, ROI sums and
   PyMca fast fit; relative RMSE and Pearson r per element.
3. trust: autoencoder reconstruction error; AUROC at flagging novel pigments.

Everything runs on 2 cores in well under 30 minutes; `--quick` shortens
training for smoke tests.

Sections: training.report.rgb, .elements, .trust; `__main__` puts them together. Every
hyperparameter is training.config.TrainConfig's default (printed at the start).
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
from torch import nn

from training.config import TrainConfig
from training.loop import predict
from training.preprocess import Preprocess

matplotlib.use("Agg")  # before pyplot is imported (in the functions that draw)

CFG = TrainConfig()
SVR_MAX_TRAIN = 4000  # SVR is O(N^2): subsample beyond this (said in the report)
KNN_MAX_TRAIN = 20000


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def throughput(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, n: int = 8192) -> float:
    """Spectra/s of fn on up to n spectra (counts/s in, predictions out)."""
    x = x[:n]
    fn(x[:64])  # warm up
    t = time.perf_counter()
    fn(x)
    return len(x) / max(time.perf_counter() - t, 1e-9)


def torch_fn(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    return lambda r: predict(model, r)


def sk_fn(model, pre: Preprocess) -> Callable[[np.ndarray], np.ndarray]:
    return lambda r: model.predict(pre(r))


def fmt(v, d=3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def scene_files(data: Path, name: str) -> list[Path]:
    """<name>.h5 and its dwell variants (<name>_*ms.h5 ...), tiny files only if nothing else."""
    full = sorted(p for p in map(Path, glob.glob(str(data / f"{name}*.h5")))
                  if "tiny" not in p.name and "corpus" not in p.name[len(name):])
    if not full:
        full = sorted(map(Path, glob.glob(str(data / f"{name}*tiny*.h5"))))
    return full

