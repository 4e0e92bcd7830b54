"""What the element-bundle tests share: PyMca's fast fit of the M6 (a quick build) and the
tiny simulated M6 scenes."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from export.element_bundle import CompiledFit
from tests.scene_support import tiny_scenes
from training.labels import INSTRUMENTS_DIR

M6 = INSTRUMENTS_DIR / "m6_jetstream.toml"
TINY = ("m6_corpus", "m6_ioannis", "m6_ioannis_100ms")


@cache
def fit_m6() -> CompiledFit:
    return CompiledFit(M6, continuum_bin_kev=3.0)  # coarse tube continuum: a quick build


def tiny_m6(out: Path) -> Path:
    """The TINY M6 scenes in `out`; returns `out`."""
    return tiny_scenes(out, TINY)
