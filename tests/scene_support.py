"""The tiny simulated scenes the training and element tests share: copied from data/ where
`make data` made them, else simulated into the test's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_scenes(out: Path, names: tuple[str, ...]) -> Path:
    """Scenes `names` (tiny) in `out`; returns `out`."""
    scenes = pytest.importorskip("training.scenes")
    for name in names:
        made = REPO / "data" / f"{name}_tiny.h5"
        if made.exists():
            shutil.copy(made, out / made.name)
        else:
            scenes.make_scene(name, out, tiny=True, progress=False, png=False)
    return out
