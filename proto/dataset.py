"""The MA-XRF dataset file: one HDF5 layout for simulated scans, converted real files and
live recordings. `proto/DATASET.md` is the contract; this module defines the layout
(`create_layout`), writes a whole scan (`write_dataset`), reads and checks it.

Only h5py, numpy, json and the stdlib. The edge's incremental SWMR writer
(`edge.recording.DatasetWriter`) creates its files with `create_layout`, so the layout
is defined here once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from proto import detectors as _detectors
from proto.elements import MAP_DEFINITION, MAP_UNITS
from proto.energy import EnergyGrid

FORMAT_NAME = "maxrf-dataset"
FORMAT_VERSION = "1.0"
COUNT_DTYPES = (np.dtype("uint16"), np.dtype("uint32"))
STATUSES = ("recording", "success", "incomplete", "abort", "fail", "complete")
_CHUNK_WIDTH = 16  # pixels per chunk along a row: 16 x 4096 x 2 B = 128 KiB, a good HDF5 chunk


class DatasetError(ValueError):
    """A dataset file is missing, truncated, inconsistent or not in our format."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def _compression(kind: str | None) -> dict[str, Any]:
    # Shuffle groups the high and low bytes of the counts: ~2x better gzip on sparse spectra.
    if kind is None:
        return {}
    if kind == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if kind == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {kind!r}")


def create_layout(
    f: h5py.File, height: int, width: int, grid: EnergyGrid, dtype: Any,
    instrument: Mapping | None, scan: Mapping | None, status: str, compression: str | None,
) -> None:
    """Root attributes and the four per-pixel datasets at full size (unacquired: zeros)."""
    dtype = np.dtype(dtype)
    if dtype not in COUNT_DTYPES:
        raise ValueError(f"counts dtype must be uint16 or uint32, got {dtype}")
    if height < 1 or width < 1:
        raise ValueError(f"scan needs at least one pixel, got {height} x {width}")
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["status"] = status
    for key, value in grid.to_dict().items():
        f.attrs[key] = value
    f.attrs["energy_units"] = "keV"
    f.attrs["instrument"] = json.dumps(dict(instrument or {}), sort_keys=True)
    f.attrs["scan"] = json.dumps(dict(scan or {}), sort_keys=True)
    counts = f.create_dataset(
        "counts", (height, width, grid.channels), dtype=dtype,
        chunks=(1, min(width, _CHUNK_WIDTH), grid.channels), fillvalue=0,
        **_compression(compression),
    )
    counts.attrs["units"] = "counts"
    counts.attrs["axes"] = "y,x,channel"
    rows = (1, width)
    for name in ("live_time_s", "real_time_s"):
        ds = f.create_dataset(name, (height, width), dtype="float32", chunks=rows, fillvalue=0)
        ds.attrs["units"] = "s"
    f.create_dataset("acquired", (height, width), dtype="bool", chunks=rows, fillvalue=False)


def write_dataset(
    path: str | os.PathLike,
    counts: np.ndarray,
    grid: EnergyGrid,
    live_time_s: np.ndarray,
    real_time_s: np.ndarray,
    *,
    photo_rgb: np.ndarray | None = None,
    original_rgb: np.ndarray | None = None,
    element_maps: Mapping[str, np.ndarray] | None = None,
    pigments: np.ndarray | None = None,
    pigment_names: list[str] | tuple[str, ...] | None = None,
    pigment_definition: str = "index into names of the top paint layer's pigment; -1 none",
    masks: Mapping[str, np.ndarray] | None = None,
    mask_definition: str = "",
    stacks: list | None = None,
    instrument: Mapping | None = None,
    scan: Mapping | None = None,
    acquired: np.ndarray | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write a whole scan (H, W, C) in one go; every pixel is acquired unless told otherwise.

    `masks` are named (H, W) regions of the painting (faded, overpaint, novel ...) and
    `stacks` a JSON-able description of the layer stacks `pigments` indexes.
    """
    path = Path(path)
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[2] != grid.channels:
        raise ValueError(f"counts must be (H, W, {grid.channels}), got {counts.shape}")
    if counts.dtype not in COUNT_DTYPES:
        raise ValueError(f"counts dtype must be uint16 or uint32, got {counts.dtype}")
    h, w, _ = counts.shape
    checks = {"live_time_s": live_time_s, "real_time_s": real_time_s}
    for name, arr in checks.items():
        if np.shape(arr) != (h, w):
            raise ValueError(f"{name} must be ({h}, {w}), got {np.shape(arr)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as f:
        create_layout(f, h, w, grid, counts.dtype, instrument, scan, "complete", compression)
        f["counts"][...] = counts
        f["live_time_s"][...] = live_time_s
        f["real_time_s"][...] = real_time_s
        f["acquired"][...] = True if acquired is None else np.asarray(acquired, dtype=bool)
        if photo_rgb is not None:
            _write_rgb(f, "photo_rgb", photo_rgb, (h, w))
        truth = f.create_group("ground_truth")
        if original_rgb is not None:
            _write_rgb(truth, "original_rgb", original_rgb, (h, w))
        if element_maps:
            _write_maps(truth, element_maps, (h, w), source="simulator ground truth")
        if pigments is not None:
            if np.shape(pigments) != (h, w):
                raise ValueError(f"pigments must be ({h}, {w}), got {np.shape(pigments)}")
            ds = truth.create_dataset("pigments", data=np.asarray(pigments, dtype=np.int16))
            ds.attrs["names"] = json.dumps(list(pigment_names or []))
            ds.attrs["definition"] = pigment_definition
        for name, mask in (masks or {}).items():
            if np.shape(mask) != (h, w):
                raise ValueError(f"mask {name!r} must be ({h}, {w}), got {np.shape(mask)}")
            ds = truth.create_dataset(f"masks/{name}", data=np.asarray(mask, dtype=bool),
                                      compression="gzip")
            ds.attrs["definition"] = mask_definition
        if stacks is not None:
            truth["stacks"] = json.dumps(stacks)  # a dataset: attributes are capped at 64 KiB
    os.replace(tmp, path)  # a reader never sees half a file under the final name
    return path


def _write_rgb(group: h5py.Group, name: str, rgb: np.ndarray, hw: tuple[int, int]) -> None:
    rgb = np.asarray(rgb)
    if rgb.shape != (*hw, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 {(*hw, 3)}, got {rgb.dtype} {rgb.shape}")
    ds = group.create_dataset(name, data=rgb, compression="gzip", compression_opts=4)
    ds.attrs["colour_space"] = "sRGB"


def _write_maps(
    group: h5py.Group, maps: Mapping[str, np.ndarray], hw: tuple[int, int], source: str,
    units: str = MAP_UNITS, definition: str = MAP_DEFINITION,
) -> None:
    names = list(maps)
    stack = np.stack([np.asarray(maps[n], dtype=np.float32) for n in names])
    if stack.shape[1:] != hw:
        raise ValueError(f"element maps must be {hw}, got {stack.shape[1:]}")
    if "element_maps" in group:
        del group["element_maps"]
    ds = group.create_dataset("element_maps", data=stack, compression="gzip", compression_opts=4)
    ds.attrs["names"] = json.dumps(names)
    ds.attrs["units"] = units
    ds.attrs["definition"] = definition
    ds.attrs["source"] = source


def set_labels(
    path: str | os.PathLike, maps: Mapping[str, np.ndarray], source: str,
    *, config: str = "", definition: str = MAP_DEFINITION,
) -> None:
    """Store fitted per-element maps (e.g. PyMca) in `labels/element_maps`, replacing old ones."""
    with open_dataset(path) as ds:
        hw = ds.shape[:2]
    with h5py.File(path, "r+") as f:
        group = f.require_group("labels")
        _write_maps(group, maps, hw, source=source, definition=definition)
        group.attrs["config"] = config


@dataclass
class Dataset:
    """A lazily read dataset file; `.counts` is the h5py dataset (slice it, it reads on demand)."""

    path: Path
    file: h5py.File

    @property
    def grid(self) -> EnergyGrid:
        return EnergyGrid.from_dict(self.file.attrs)

    @property
    def counts(self) -> h5py.Dataset:
        return self.file["counts"]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.counts.shape)  # type: ignore[return-value]

    @property
    def status(self) -> str:
        return str(self.file.attrs["status"])

    @property
    def live_time_s(self) -> np.ndarray:
        return self.file["live_time_s"][...]

    @property
    def real_time_s(self) -> np.ndarray:
        return self.file["real_time_s"][...]

    @property
    def acquired(self) -> np.ndarray:
        return self.file["acquired"][...].astype(bool)

    @property
    def instrument(self) -> dict:
        return json.loads(self.file.attrs["instrument"])

    @property
    def scan(self) -> dict:
        return json.loads(self.file.attrs["scan"])

    @property
    def photo_rgb(self) -> np.ndarray | None:
        return self._optional("photo_rgb")

    @property
    def original_rgb(self) -> np.ndarray | None:
        return self._optional("ground_truth/original_rgb")

    @property
    def pigments(self) -> np.ndarray | None:
        return self._optional("ground_truth/pigments")

    @property
    def pigment_names(self) -> list[str]:
        node = self.file.get("ground_truth/pigments")
        return json.loads(node.attrs["names"]) if node is not None else []

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """Named (H, W) bool regions of a simulated painting (faded, overpaint, novel ...)."""
        group = self.file.get("ground_truth/masks")
        return {} if group is None else {k: v[...].astype(bool) for k, v in group.items()}

    @property
    def element_maps(self) -> dict[str, np.ndarray] | None:
        """Ground-truth maps (simulator), counts per live second of each main line group."""
        return self._maps("ground_truth/element_maps")

    @property
    def labels(self) -> dict[str, np.ndarray] | None:
        """Fitted maps (PyMca), same units and definition as the ground truth."""
        return self._maps("labels/element_maps")

    @property
    def detectors(self) -> _detectors.Detectors | None:  # elements kept apart; None if absent
        return _detectors.read(self.file)

    def _optional(self, name: str) -> np.ndarray | None:
        node = self.file.get(name)
        return None if node is None else node[...]

    def _maps(self, name: str) -> dict[str, np.ndarray] | None:
        node = self.file.get(name)
        if node is None:
            return None
        stack = node[...]
        return dict(zip(json.loads(node.attrs["names"]), stack, strict=True))

    def spectra(self, rows_per_block: int = 8) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield (row slice, counts block (r, W, C)) in row blocks that match the chunking."""
        h = self.shape[0]
        for y0 in range(0, h, rows_per_block):
            rows = slice(y0, min(h, y0 + rows_per_block))
            yield rows, self.counts[rows]

    def verify(self) -> None:
        """Decode every chunk of every dataset (open only checks metadata); raise DatasetError."""
        try:
            for _ in self.spectra():
                pass
            self.file.visititems(lambda _n, o: o[...] if isinstance(o, h5py.Dataset) else None)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise DatasetError(self.path, f"corrupt data: {exc}") from exc

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError as exc:
        raise DatasetError(path, "no such file") from exc
    except OSError as exc:
        if "already open for write" in str(exc):
            # A live recording (or one killed mid-scan): the SWMR reader sees every flushed pixel.
            try:
                return h5py.File(path, "r", libver="latest", swmr=True)
            except OSError as exc2:
                raise DatasetError(path, f"cannot open recording: {exc2}") from exc2
        problem = str(exc)
        if "truncated" in problem:
            problem = f"file is truncated ({problem})"
        elif "signature" in problem or "not an HDF5" in problem.lower():
            problem = f"not an HDF5 file ({problem})"
        raise DatasetError(path, problem) from exc


def _validate(ds: Dataset) -> None:
    f, path = ds.file, ds.path
    if f.attrs.get("format") != FORMAT_NAME:
        raise DatasetError(path, f"not a {FORMAT_NAME} file (format attribute missing or wrong)")
    version = str(f.attrs.get("format_version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise DatasetError(path, f"unsupported format_version {version!r}, need {FORMAT_VERSION}")
    for name in ("counts", "live_time_s", "real_time_s", "acquired"):
        if not isinstance(f.get(name), h5py.Dataset):
            raise DatasetError(path, f"missing dataset '{name}'")
    for key in ("offset", "gain", "channels", "instrument", "scan", "status"):
        if key not in f.attrs:
            raise DatasetError(path, f"missing attribute '{key}'")
    try:
        grid = ds.grid
    except (ValueError, TypeError) as exc:
        raise DatasetError(path, f"bad energy calibration: {exc}") from exc
    counts = f["counts"]
    if counts.ndim != 3:
        raise DatasetError(path, f"counts must be 3-D (H, W, C), got shape {counts.shape}")
    if counts.dtype not in COUNT_DTYPES:
        raise DatasetError(path, f"counts dtype must be uint16 or uint32, got {counts.dtype}")
    h, w, c = counts.shape
    if c != grid.channels:
        raise DatasetError(path, f"calibration says {grid.channels} channels, counts have {c}")
    expected = {
        "live_time_s": (h, w), "real_time_s": (h, w), "acquired": (h, w),
        "photo_rgb": (h, w, 3), "ground_truth/original_rgb": (h, w, 3),
        "ground_truth/pigments": (h, w),
    }
    for name, shape in expected.items():
        node = f.get(name)
        if node is not None and node.shape != shape:
            raise DatasetError(path, f"'{name}' has shape {node.shape}, expected {shape}")
    for name, node in (f.get("ground_truth/masks") or {}).items():
        if node.shape != (h, w):
            raise DatasetError(path, f"mask '{name}' has shape {node.shape}, expected {(h, w)}")
    if (problem := _detectors.check(f, (h, w, c))) is not None:
        raise DatasetError(path, problem)
    for name in ("ground_truth/element_maps", "labels/element_maps"):
        node = f.get(name)
        if node is None:
            continue
        try:
            names = json.loads(node.attrs["names"])
        except (KeyError, ValueError) as exc:
            raise DatasetError(path, f"'{name}' lacks a JSON 'names' attribute") from exc
        if node.shape != (len(names), h, w):
            raise DatasetError(path, f"'{name}' has shape {node.shape}, expected "
                                     f"{(len(names), h, w)} for names {names}")
    try:
        json.loads(f.attrs["instrument"])
        json.loads(f.attrs["scan"])
    except ValueError as exc:
        raise DatasetError(path, f"instrument/scan attributes are not JSON: {exc}") from exc


def open_dataset(path: str | os.PathLike, *, verify: bool = False) -> Dataset:
    """Open and validate a dataset file (metadata; `verify=True` also decodes every chunk)."""
    path = Path(path)
    ds = Dataset(path, _open_h5(path))
    try:
        _validate(ds)
        if verify:
            ds.verify()
    except DatasetError:
        ds.close()
        raise
    except (OSError, RuntimeError, KeyError) as exc:
        ds.close()
        raise DatasetError(path, f"unreadable: {exc}") from exc
    return ds
