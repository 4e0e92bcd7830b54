"""Readers from real-instrument files into one in-memory `Scan`, like rosettasciio's
`file_reader`: one module per format, each with `file_reader(path, **options) -> Scan`.

`read(path, **options)` picks the module by extension (a folder is a folder of per-pixel
Amptek `.mca` files); `training.convert` writes the result as a dataset file
(proto/DATASET.md), so everything downstream reads one format. A reader never guesses: what
the file does not say (calibration, live time) comes back as None for the caller to supply,
and every approximation it has to make is listed in `Scan.warnings`.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from proto.dataset import DatasetError
from proto.energy import EnergyGrid


class ReaderError(DatasetError):
    """An input file is unsupported, truncated or corrupt; the message names the file."""


@dataclass
class Scan:
    """What every reader returns.

    `counts` is (H, W, C), or (D, H, W, C) when the file keeps D detector elements apart
    (then `detector_names` has D entries, and times are (D, H, W)). `grid` is None where the
    file has no calibration, `live_time_s` None where it has no live time.
    """

    counts: np.ndarray
    grid: EnergyGrid | None
    live_time_s: np.ndarray | None
    real_time_s: np.ndarray | None
    instrument: dict = field(default_factory=dict)
    scan: dict = field(default_factory=dict)
    detector_names: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.counts.ndim != (4 if self.detector_names else 3):
            raise ValueError(f"counts {self.counts.shape} for detectors {self.detector_names}")
        if self.detector_names and len(self.detector_names) != self.counts.shape[0]:
            raise ValueError(f"{len(self.detector_names)} names for {self.counts.shape[0]} "
                             "detectors")
        c = self.counts.shape[-1]
        if self.grid is not None and self.grid.channels != c:
            raise ValueError(f"calibration has {self.grid.channels} channels, counts {c}")
        shape = self.counts.shape[:-1]
        for name in ("live_time_s", "real_time_s"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.broadcast_to(value, shape).astype(np.float32))

    @property
    def hw(self) -> tuple[int, int]:
        return self.counts.shape[-3], self.counts.shape[-2]

    def with_calibration(self, offset: float | None, gain: float | None) -> Scan:
        """Override offset and/or gain (keV) where the file lacks or misstates them."""
        if offset is None and gain is None:
            return self
        if self.grid is None and (offset is None or gain is None):
            raise ReaderError(self.scan.get("source_file", "?"),
                              "file has no energy calibration: pass both offset and gain")
        base = self.grid or EnergyGrid(0.0, 1.0, self.counts.shape[-1])
        grid = EnergyGrid(base.offset if offset is None else offset,
                          base.gain if gain is None else gain, base.channels)
        return replace(self, grid=grid)

    def select(self, detector: int | str | None) -> Scan:
        """One detector element (index or name), or "sum" of all (live time: their mean, so
        counts / live time is the combined count rate when the elements see the same rate).
        A single-detector scan is returned as it is."""
        if not self.detector_names or detector is None:
            return self
        if detector == "sum":
            counts = self.counts.sum(axis=0, dtype=np.uint64)
            pick = {"detector": "sum of " + ", ".join(self.detector_names)}
            live = None if self.live_time_s is None else self.live_time_s.mean(axis=0)
            real = None if self.real_time_s is None else self.real_time_s.mean(axis=0)
        else:
            index = self._index(detector)
            counts = self.counts[index]
            pick = {"detector": self.detector_names[index]}
            live = None if self.live_time_s is None else self.live_time_s[index]
            real = None if self.real_time_s is None else self.real_time_s[index]
        return replace(self, counts=as_counts(counts, self.scan.get("source_file", "?")),
                       live_time_s=live, real_time_s=real, detector_names=(),
                       scan={**self.scan, **pick}, warnings=list(self.warnings))

    def _index(self, detector: int | str) -> int:
        names = self.detector_names
        if isinstance(detector, str) and detector in names:
            return names.index(detector)
        try:
            index = int(detector)
        except ValueError:
            index = -1
        if not 0 <= index < len(names):
            raise ReaderError(self.scan.get("source_file", "?"),
                              f"no detector {detector!r}: this file has {list(names)} "
                              f"(indices 0-{len(names) - 1}, or 'sum')")
        return index


def as_counts(data: Any, path: str | os.PathLike) -> np.ndarray:
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


def live_from_dead_time(real_s: np.ndarray, dead_percent: np.ndarray,
                        path: str | os.PathLike) -> np.ndarray:
    """Live time = real time x (1 - dead time %); refuse percentages outside [0, 100)."""
    dead = np.asarray(dead_percent, dtype=np.float64)
    if not np.all(np.isfinite(dead)) or dead.min() < 0 or dead.max() >= 100:
        raise ReaderError(path, f"dead time outside [0, 100) %: {dead.min()}..{dead.max()}")
    return np.asarray(real_s, dtype=np.float64) * (1 - dead / 100)


FORMATS: dict[str, str] = {
    ".spx": "bruker", ".bcf": "bruker", ".rpl": "ripple",
    ".mca": "mca", ".spe": "mca", ".dat": "mca",
    ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".nxs": "hdf5",
    ".geopixe": "geopixe",
}


def read(path: str | os.PathLike, **options: Any) -> Scan:
    """Read any supported file (or a folder of PMCA `.mca` files) into a `Scan`; options go
    to the format's reader (e.g. `grid` for a folder, `dataset`/`axes` for HDF5)."""
    path = Path(path)
    if path.is_dir():
        module = "mca_folder"
    elif not path.is_file():
        raise ReaderError(path, "no such file")
    else:
        module = FORMATS.get(path.suffix.lower())
        if module is None:
            raise ReaderError(path, f"unsupported extension {path.suffix!r}; known: "
                                    f"{sorted(FORMATS)} or a folder of .mca files")
    reader = importlib.import_module(f"training.readers.{module}").file_reader
    try:
        inspect.signature(reader).bind(path, **options)
    except TypeError as exc:  # an option this format does not take
        raise ReaderError(path, f"the {module} reader does not take that option ({exc})") \
            from exc
    return reader(path, **options)
