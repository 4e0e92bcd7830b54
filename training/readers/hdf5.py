"""Plain HDF5 cubes: a dataset of (H, W, C) or (N, C) counts plus calibration attributes.

Files already in our dataset format pass straight through. Otherwise the cube is the
dataset named `counts`/`spectra`/`data` (or the largest integer 2-D/3-D dataset); calibration
comes from attributes `offset`/`gain` (keV; also `offset_kev`, `gain_kev`, or `calibration`
= [offset, gain]) on the dataset or the file root; live/real time from sibling datasets
`live_time(_s)`/`real_time(_s)` or scalar attributes of those names.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from proto.dataset import FORMAT_NAME, DatasetError, open_dataset
from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts

_NAMES = ("counts", "spectra", "data", "mca", "spectrum")


def _find_cube(f: h5py.File) -> h5py.Dataset:
    found: list[h5py.Dataset] = []
    f.visititems(lambda _n, o: found.append(o) if isinstance(o, h5py.Dataset) else None)
    cubes = [d for d in found if d.ndim in (2, 3) and d.dtype.kind in "uif"]
    for name in _NAMES:
        for d in cubes:
            if d.name.rsplit("/", 1)[-1].lower() == name:
                return d
    if not cubes:
        raise ValueError("no 2-D or 3-D numeric dataset")
    return max(cubes, key=lambda d: d.size)


def _attr(nodes: list, *names: str) -> float | None:
    for node in nodes:
        for name in names:
            if name in node.attrs:
                return float(np.asarray(node.attrs[name]).reshape(-1)[0])
    return None


def _times(
    f: h5py.File, cube: h5py.Dataset, kind: str, hw: tuple[int, int]
) -> np.ndarray | float | None:
    for name in (f"{kind}_time_s", f"{kind}_time"):
        node = cube.parent.get(name)
        if isinstance(node, h5py.Dataset):
            values = np.asarray(node[...], dtype=np.float64)
            if values.size == 1:
                return float(values.reshape(-1)[0])
            if values.size == hw[0] * hw[1]:
                return values.reshape(hw)
            raise ValueError(f"'{node.name}' has {values.size} values for {hw} pixels")
    return _attr([cube, f], f"{kind}_time_s", f"{kind}_time")


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == FORMAT_NAME:
                return _ours(path)
            cube = _find_cube(f)
            data = cube[...]
            if data.ndim == 2:  # (N, C) list of spectra -> one row
                data = data[None]
            hw = data.shape[:2]
            nodes = [cube, f]
            calibration = next((np.asarray(n.attrs["calibration"]).reshape(-1)
                                for n in nodes if "calibration" in n.attrs), None)
            offset = _attr(nodes, "offset", "offset_kev")
            gain = _attr(nodes, "gain", "gain_kev")
            if calibration is not None and calibration.size >= 2:
                offset, gain = float(calibration[0]), float(calibration[1])
            live = _times(f, cube, "live", hw)
            real = _times(f, cube, "real", hw)
            name = cube.name
    except ReaderError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise ReaderError(path, f"unreadable HDF5 cube ({exc})") from exc
    grid = EnergyGrid(offset, gain, data.shape[2]) if offset is not None and gain else None
    live_source = "file" if live is not None else "unknown, 1 s assumed"
    live = 1.0 if live is None else live
    real = live if real is None else real
    return Scan(as_counts(data, path), grid, live, real,
                instrument={"source_format": "hdf5"},
                scan={"source_file": path.name, "source_dataset": name,
                      "live_time_source": live_source})


def _ours(path: Path) -> Scan:
    try:
        with open_dataset(path) as ds:
            return Scan(ds.counts[...], ds.grid, ds.live_time_s, ds.real_time_s,
                        ds.instrument, ds.scan)
    except DatasetError as exc:
        raise ReaderError(path, exc.problem) from exc
