"""A lab's own scan, no simulator: PyMca fast-fit labels -> the element MLP on them.

    python -m training.train lab DATASET --cfg CFG [--out artifacts/trained] [--key=value ...]

DATASET is a dataset file (`make convert`), CFG a PyMca fit configuration of its instrument
(training/configs/). The labels are training.labels.fit_labels' maps; pixels never acquired
(NaN labels) are left out of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from proto.elements import ELEMENTS
from training import artifacts, models
from training.config import TrainConfig, to_toml
from training.data import load_scene
from training.element_net import element_info, element_scale, train_element_net
from training.jsonutil import jsonable
from training.loop import predict, setup
from training.metrics import element_errors
from training.preprocess import Preprocess


def train_lab(dataset: str | Path, pymca_cfg: str | Path, out: str | Path,
              name: str = "elements_lab", epochs: int | None = None,
              cfg: TrainConfig | None = None) -> Path:
    """Element MLP on a lab's own scan, labelled by a PyMca fast fit with `pymca_cfg`."""
    from training.labels import fit_labels  # PyMca: only this command needs it

    cfg = cfg or TrainConfig()
    print(f"# training config\n{to_toml(cfg)}", flush=True)
    setup(cfg.seed, cfg.threads)
    maps = fit_labels(dataset, pymca_cfg)
    names = tuple(e for e in ELEMENTS if e in maps)
    if not names:
        raise ValueError(f"{pymca_cfg} fits none of the map elements {ELEMENTS}")
    scene = load_scene(dataset)
    y = np.stack([np.asarray(maps[e], np.float32).reshape(-1) for e in names], axis=1)
    ok = np.isfinite(y).all(axis=1)
    rates, y = scene.rates[ok], y[ok]
    mlp = models.element_mlp(Preprocess.fit(rates), element_scale(y), cfg.el_hidden)
    train_element_net(mlp, rates, y, epochs=epochs or cfg.el_epochs, desc="lab mlp", cfg=cfg)
    pred = predict(mlp, rates)
    fit_metrics = {e: element_errors(y[:, j], pred[:, j]) for j, e in enumerate(names)}
    info = element_info(scene.name, dataset, int(ok.sum()), {"train_fit": fit_metrics},
                        outputs=names, targets=f"PyMca fast fit labels ({Path(pymca_cfg).name})",
                        model="element_mlp", config=jsonable(cfg))
    folder = artifacts.save(name, mlp, info, out)
    print(f"trained {name} on {scene.name} ({int(ok.sum())} spectra, {list(names)}) -> {folder}")
    return folder
