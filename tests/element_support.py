"""What the element-bundle tests share: PyMca's fast fit of the M6 (a quick build) and the
tiny simulated M6 scenes (copied from data/ where `make data` made them)."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest

from export.element_bundle import CompiledFit
from training.labels import INSTRUMENTS_DIR

REPO = Path(__file__).resolve().parents[1]
M6 = INSTRUMENTS_DIR / "m6_jetstream.toml"
TINY = ("m6_corpus", "m6_ioannis", "m6_ioannis_100ms")


@cache
def fit_m6() -> CompiledFit:
    return CompiledFit(M6, continuum_bin_kev=3.0)  # coarse tube continuum: a quick build


def tiny_scenes(out: Path) -> Path:
    """The TINY scenes in `out` (made there unless data/ holds them); returns `out`."""
    scenes = pytest.importorskip("training.scenes")
    for name in TINY:
        made = REPO / "data" / f"{name}_tiny.h5"
        if made.exists():
            shutil.copy(made, out / made.name)
        else:
            scenes.make_scene(name, out, tiny=True, progress=False, png=False)
    return out
