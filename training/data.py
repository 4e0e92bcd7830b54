"""A dataset file as the models see it: pixels flattened, counts/s on MODEL_GRID, and every
piece of truth the file holds (photograph, original colour, element maps, labels, masks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proto.dataset import open_dataset
from proto.elements import ELEMENTS
from training.catalogue import scene_path
from training.preprocess import load_rates


@dataclass
class Scene:
    """One dataset file, flattened to pixels and ready for the models."""

    name: str
    path: Path
    shape: tuple[int, int]
    rates: np.ndarray  # (N, D) counts per live second on MODEL_GRID
    dwell_s: float  # nominal dwell (scan record), else median live time
    photo: np.ndarray | None = None  # (N, 3) float 0..1
    original: np.ndarray | None = None  # (N, 3) float 0..1
    elements: np.ndarray | None = None  # (N, E) counts/s, columns = ELEMENTS (truth)
    labels: np.ndarray | None = None  # (N, E) PyMca-fit maps, columns = label_names
    label_names: tuple[str, ...] = ()
    pigments: np.ndarray | None = None  # (N,) int pigment index
    pigment_names: tuple[str, ...] = field(default_factory=tuple)
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # (N,) bool: faded, novel ...

    def image(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values).reshape(*self.shape, *np.shape(values)[1:])


def load_scene(path: str | Path) -> Scene:
    path = Path(path)
    rates = load_rates(path)
    h, w, d = rates.shape
    with open_dataset(path) as ds:
        live = np.asarray(ds.live_time_s, np.float64)
        # nominal dwell from the scan record (live time is shorter by the dead time)
        dwell = (ds.scan or {}).get("dwell_s") or float(np.median(live[live > 0]))
        s = Scene(path.stem, path, (h, w), rates.reshape(-1, d), float(dwell))
        if ds.photo_rgb is not None:
            s.photo = np.asarray(ds.photo_rgb, np.float32).reshape(-1, 3) / 255.0
        if ds.original_rgb is not None:
            s.original = np.asarray(ds.original_rgb, np.float32).reshape(-1, 3) / 255.0
        maps = ds.element_maps
        if maps:
            s.elements = np.stack(
                [np.asarray(maps.get(e, np.zeros((h, w))), np.float32).reshape(-1)
                 for e in ELEMENTS], axis=1)
        labels = ds.labels
        if labels:
            s.label_names = tuple(e for e in ELEMENTS if e in labels)
            s.labels = np.stack(
                [np.asarray(labels[e], np.float32).reshape(-1) for e in s.label_names], axis=1)
        pigments = ds.pigments
        if pigments is not None:
            s.pigments = np.asarray(pigments).reshape(-1).astype(np.int64)
            s.pigment_names = tuple(ds.pigment_names)
        s.masks = {k: m.reshape(-1) for k, m in ds.masks.items()}
    return s


def load_heldout(data: str | Path, name: str) -> Scene | None:
    """The held-out scene `name` when `data` has it (full or tiny), else None."""
    try:
        return load_scene(scene_path(data, name))
    except FileNotFoundError:
        return None


def novel_mask(train: Scene, test: Scene) -> np.ndarray | None:
    """Pixels of `test` with a pigment absent from `train`: the scene's own "novel" mask,
    else pigment (stack) names never seen in `train`; -1 = no pigment."""
    if "novel" in test.masks:
        return test.masks["novel"] if test.masks["novel"].any() else None
    if test.pigments is None or train.pigments is None:
        return None

    def name(scene: Scene, i: int) -> str | int:
        return scene.pigment_names[i] if 0 <= i < len(scene.pigment_names) else i

    seen = {name(train, int(i)) for i in np.unique(train.pigments) if i >= 0}
    mask = np.zeros(len(test.pigments), bool)
    for i in np.unique(test.pigments):
        if i >= 0 and name(test, int(i)) not in seen:
            mask |= test.pigments == i
    return mask if mask.any() else None
