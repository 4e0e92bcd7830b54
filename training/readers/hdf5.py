"""Plain HDF5 cubes, our own dataset files (passed through) and APS MAPS files (`maps`).

Options, for files whose layout cannot be guessed:
- `dataset`: path of the counts dataset (default: one named counts/spectra/data/mca/spectrum,
  else the largest integer 2-D/3-D dataset);
- `axes`: the counts' axis order, letters y, x, c (channel), d (detector), n (pixel of a
  list): e.g. "yxc" (default for 3-D), "cyx" (channels first), "dyxc", "nc" (default 2-D);
- `live_time` / `real_time`: dataset paths (or attribute names) of the times in seconds:
  a scalar, (H, W), (D, H, W) or (N,) for a list. Default: `live_time(_s)`/`real_time(_s)`
  beside the cube or as attributes. No live time found -> None (the caller must supply one).
Calibration from attributes `offset`/`gain` (keV; also `offset_kev`, `gain_kev`, or
`calibration` = [offset, gain]) on the dataset or the file root.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from proto.dataset import FORMAT_NAME, DatasetError, open_dataset
from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts, maps

_NAMES = ("counts", "spectra", "data", "mca", "spectrum")


def _find_cube(f: h5py.File, name: str | None) -> h5py.Dataset:
    if name is not None:
        node = f.get(name)
        if not isinstance(node, h5py.Dataset):
            raise ValueError(f"no dataset {name!r}")
        return node
    found: list[h5py.Dataset] = []
    f.visititems(lambda _n, o: found.append(o) if isinstance(o, h5py.Dataset) else None)
    cubes = [d for d in found if d.ndim in (2, 3) and d.dtype.kind in "uif"]
    for wanted in _NAMES:
        for d in cubes:
            if d.name.rsplit("/", 1)[-1].lower() == wanted:
                return d
    if not cubes:
        raise ValueError("no 2-D or 3-D numeric dataset (pass dataset=...)")
    return max(cubes, key=lambda d: d.size)


def _arrange(data: np.ndarray, axes: str | None) -> tuple[np.ndarray, bool]:
    """Counts as (H, W, C) or (D, H, W, C); returns (array, has detector axis)."""
    axes = axes or {2: "nc", 3: "yxc"}.get(data.ndim, "")
    if len(axes) != data.ndim or sorted(axes) not in (sorted("nc"), sorted("yxc"),
                                                      sorted("dnc"), sorted("dyxc")):
        raise ValueError(f"axes {axes!r} do not describe a {data.ndim}-D cube {data.shape} "
                         "(letters y, x, c, d, n; e.g. yxc, cyx, dyxc, nc)")
    if "n" in axes:  # a list of spectra becomes one row
        target = "dnc" if "d" in axes else "nc"
        data = np.moveaxis(data, [axes.index(a) for a in target], range(len(target)))
        data = data[:, None] if "d" in axes else data[None]
        return data, "d" in axes
    target = "dyxc" if "d" in axes else "yxc"
    return np.moveaxis(data, [axes.index(a) for a in target], range(len(target))), "d" in axes


def _attr(nodes: list, *names: str) -> float | None:
    for node in nodes:
        for name in names:
            if name in node.attrs:
                return float(np.asarray(node.attrs[name]).reshape(-1)[0])
    return None


def _times(f: h5py.File, cube: h5py.Dataset, kind: str, given: str | None,
           shape: tuple[int, ...]) -> np.ndarray | None:
    candidates = [given] if given else [f"{kind}_time_s", f"{kind}_time"]
    for name in candidates:
        node = f.get(name) if name.startswith("/") or given else cube.parent.get(name)
        if isinstance(node, h5py.Dataset):
            values = np.asarray(node[...], dtype=np.float64)
            if values.size == 1:
                return np.full(shape, float(values.reshape(-1)[0]))
            if values.size == int(np.prod(shape)):
                return values.reshape(shape)
            if len(shape) == 3 and values.size == shape[1] * shape[2]:  # shared by detectors
                return np.broadcast_to(values.reshape(shape[1:]), shape).copy()
            raise ValueError(f"'{node.name}' has {values.size} values for {shape} pixels")
    value = _attr([cube, f], *candidates)
    if given and value is None:
        raise ValueError(f"no dataset or attribute {given!r} for the {kind} time")
    return None if value is None else np.full(shape, value)


def file_reader(path: str | os.PathLike, dataset: str | None = None, axes: str | None = None,
                live_time: str | None = None, real_time: str | None = None) -> Scan:
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == FORMAT_NAME:
                return _ours(path)
            if dataset is None and axes is None and maps.is_maps(f):
                return maps.file_reader(path)
            cube = _find_cube(f, dataset)
            data, has_detectors = _arrange(cube[...], axes)
            nodes = [cube, f]
            calibration = next((np.asarray(n.attrs["calibration"]).reshape(-1)
                                for n in nodes if "calibration" in n.attrs), None)
            offset = _attr(nodes, "offset", "offset_kev")
            gain = _attr(nodes, "gain", "gain_kev")
            if calibration is not None and calibration.size >= 2:
                offset, gain = float(calibration[0]), float(calibration[1])
            live = _times(f, cube, "live", live_time, data.shape[:-1])
            real = _times(f, cube, "real", real_time, data.shape[:-1])
            name = cube.name
    except ReaderError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise ReaderError(path, f"unreadable HDF5 cube ({exc})") from exc
    grid = EnergyGrid(offset, gain, data.shape[-1]) if offset is not None and gain else None
    return Scan(as_counts(data, path), grid, live, real,
                instrument={"source_format": "hdf5"},
                scan={"source_file": path.name, "source_dataset": name,
                      "live_time_source": "file" if live is not None else "not in file"},
                detector_names=tuple(str(i) for i in range(data.shape[0]))
                if has_detectors else ())


def _ours(path: Path) -> Scan:
    try:
        with open_dataset(path) as ds:
            return Scan(ds.counts[...], ds.grid, ds.live_time_s, ds.real_time_s,
                        ds.instrument, ds.scan)
    except DatasetError as exc:
        raise ReaderError(path, exc.problem) from exc
