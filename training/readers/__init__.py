"""Readers from real-instrument files into one in-memory `Scan`, like rosettasciio's
`file_reader`: one module per format, each with `file_reader(path) -> Scan`.

`read(path)` picks the module by extension; `training.convert` writes the result as a
dataset file (proto/DATASET.md), so everything downstream reads one format.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from proto.dataset import DatasetError
from proto.energy import EnergyGrid


class ReaderError(DatasetError):
    """An input file is unsupported, truncated or corrupt; the message names the file."""


@dataclass
class Scan:
    """What every reader returns: counts (H, W, C) on `grid`, times per pixel in seconds."""

    counts: np.ndarray
    grid: EnergyGrid | None  # None where the file carries no calibration
    live_time_s: np.ndarray
    real_time_s: np.ndarray
    instrument: dict = field(default_factory=dict)
    scan: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w, c = self.counts.shape
        if self.grid is not None and self.grid.channels != c:
            raise ValueError(f"calibration has {self.grid.channels} channels, counts {c}")
        self.live_time_s = np.broadcast_to(self.live_time_s, (h, w)).astype(np.float32)
        self.real_time_s = np.broadcast_to(self.real_time_s, (h, w)).astype(np.float32)

    def with_calibration(self, offset: float | None, gain: float | None) -> Scan:
        """Override offset and/or gain (keV) where the file lacks or misstates them."""
        if offset is None and gain is None:
            return self
        base = self.grid or EnergyGrid(0.0, 1.0, self.counts.shape[2])
        grid = EnergyGrid(base.offset if offset is None else offset,
                          base.gain if gain is None else gain, base.channels)
        return replace(self, grid=grid)


def as_counts(data: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Counts as uint16 where they fit, else uint32; refuse negative or fractional values."""
    data = np.asarray(data)
    if data.size == 0:
        raise ReaderError(path, "no spectra in file")
    if not np.all(np.isfinite(data)) or data.min() < 0:
        raise ReaderError(path, "counts must be finite and non-negative")
    if data.dtype.kind == "f" and not np.array_equal(data, np.round(data)):
        raise ReaderError(path, "counts are not whole numbers (already normalised?)")
    top = data.max()
    if top >= 2**32:
        raise ReaderError(path, f"counts up to {top} overflow uint32")
    return data.astype(np.uint16 if top < 2**16 else np.uint32)


FORMATS: dict[str, str] = {
    ".spx": "bruker", ".bcf": "bruker", ".mca": "mca", ".spe": "mca", ".dat": "mca",
    ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".nxs": "hdf5",
}


def read(path: str | os.PathLike) -> Scan:
    """Read any supported file into a `Scan`; ReaderError names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(path, "no such file")
    module = FORMATS.get(path.suffix.lower())
    if module is None:
        raise ReaderError(path, f"unsupported extension {path.suffix!r}; known: {sorted(FORMATS)}")
    reader = importlib.import_module(f"training.readers.{module}")
    return reader.file_reader(path)
