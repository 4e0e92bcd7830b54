"""The `predictions` group of a dataset file: a scan's final maps as data (proto/DATASET.md,
"Predictions"). Written by the edge daemon at scan end (from its last published canvases)
and by `python -m archive reprocess`; read by `edge export-maps` and by any NeXus reader.

NeXus layout, so silx, h5web and PyMca open the maps with axes: `predictions` is an
`NXentry` (the file's `default`) holding `NXdata` groups `elements`, `rgb`, `trust` and
`masks`, each with `signal` (+ `auxiliary_signals`), `axes = ["y", "x"]` and coordinate
datasets in mm (pixel index where the pixel size is unknown). Only h5py, numpy and json.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import h5py
import numpy as np

from proto.elements import MAP_DEFINITION, MAP_UNITS

GROUP = "predictions"
VERSION = "1.0"
_TMP = "predictions.partial"  # built here, then moved: a reader never sees half a group
_STR = h5py.string_dtype()


@dataclass
class Predictions:
    """A `predictions` group read back: every array as stored (float32 maps in counts/s)."""

    elements: dict[str, np.ndarray]
    uncertainty: dict[str, np.ndarray] = field(default_factory=dict)
    rgb: np.ndarray | None = None
    trust: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    bundles: dict[str, str] = field(default_factory=dict)  # kind -> sha256 of model.onnx
    pixel_size_um: float | None = None
    y: np.ndarray | None = None  # row coordinates (mm, or pixel index)
    x: np.ndarray | None = None
    axis_units: str = "pixel"
    attrs: dict = field(default_factory=dict)  # the group's other attributes


def axes(
    height: int, width: int, pixel_size_um: float | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Pixel-centre coordinates (y, x, units): mm from the first pixel when the pixel size is
    known (> 0), else the pixel index."""
    if pixel_size_um and pixel_size_um > 0:
        step = float(pixel_size_um) / 1000.0
        return np.arange(height) * step, np.arange(width) * step, "mm"
    return np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), "pixel"


def _names(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=_STR)


def _nxdata(parent: h5py.Group, name: str, signals: list[str], hw: tuple[int, int],
            coords: tuple[np.ndarray, np.ndarray, str], extra_axis: bool = False) -> h5py.Group:
    g = parent.create_group(name)
    g.attrs["NX_class"] = "NXdata"
    g.attrs["signal"] = signals[0]
    if len(signals) > 1:
        g.attrs["auxiliary_signals"] = _names(signals[1:])
    g.attrs["axes"] = _names(["y", "x", "."] if extra_axis else ["y", "x"])
    g.attrs["y_indices"], g.attrs["x_indices"] = np.int32(0), np.int32(1)
    y, x, units = coords
    for axis, values, long in (("y", y, "row"), ("x", x, "column")):
        d = g.create_dataset(axis, data=np.asarray(values, dtype=np.float64))
        d.attrs["units"] = units
        d.attrs["long_name"] = f"{long} ({units})"
    if len(y) != hw[0] or len(x) != hw[1]:
        raise ValueError(f"axes {len(y)} x {len(x)} do not match the maps {hw}")
    return g


def _image(g: h5py.Group, name: str, data: np.ndarray, dtype: str, hw: tuple[int, int],
           **attrs: str) -> None:
    a = np.asarray(data)
    if a.shape[:2] != hw:
        raise ValueError(f"{g.name}/{name} must be {hw}, got {a.shape}")
    d = g.create_dataset(name, data=a.astype(dtype, copy=False))
    for k, v in attrs.items():
        d.attrs[k] = v


def write(
    path: str | os.PathLike,
    elements: Mapping[str, np.ndarray],
    *,
    bundles: Mapping[str, str],
    source: str,
    uncertainty: Mapping[str, np.ndarray] | None = None,
    rgb: np.ndarray | None = None,
    trust: np.ndarray | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    pixel_size_um: float | None = None,
    attrs: Mapping[str, str | int | float] | None = None,
) -> None:
    """Write (or replace) the `predictions` group of a closed dataset file, in place.

    `elements`: name -> (H, W) counts per live second, stored float32 exactly as given;
    `uncertainty`: name -> (H, W) one standard deviation, same units (NeXus `<name>_errors`);
    `rgb` (H, W, 3) uint8 sRGB; `trust` (H, W) score; `masks`: name -> (H, W) bool (uint8 0/1
    on disk, so every viewer shows them); `bundles`: kind -> sha256 of the models that made
    them. The group is built beside the old one and moved into place.
    """
    if not elements:
        raise ValueError("predictions need at least one element map")
    with h5py.File(path, "r+") as f:
        first = np.shape(next(iter(elements.values())))
        hw = tuple(f["acquired"].shape) if "acquired" in f else first[:2]
        coords = axes(hw[0], hw[1], pixel_size_um)
        if _TMP in f:
            del f[_TMP]  # left by a write that died half way
        top = f.create_group(_TMP)
        top.attrs["NX_class"] = "NXentry"
        top.attrs["default"] = "elements"
        top.attrs["format_version"] = VERSION
        top.attrs["source"] = source
        top.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        top.attrs["bundles"] = json.dumps(dict(bundles), sort_keys=True)
        top.attrs["units"] = MAP_UNITS
        top.attrs["definition"] = MAP_DEFINITION
        if pixel_size_um and pixel_size_um > 0:
            top.attrs["pixel_size_um"] = float(pixel_size_um)
        for k, v in (attrs or {}).items():
            top.attrs[k] = v
        names = list(elements)
        top.attrs["elements"] = json.dumps(names)
        g = _nxdata(top, "elements", names, hw, coords)
        for n in names:
            _image(g, n, elements[n], "float32", hw, units=MAP_UNITS,
                   long_name=f"{n} ({MAP_UNITS})")
            if uncertainty and n in uncertainty:
                _image(g, f"{n}_errors", uncertainty[n], "float32", hw, units=MAP_UNITS,
                       long_name=f"{n} uncertainty, 1 sigma ({MAP_UNITS})")
        if rgb is not None:
            g = _nxdata(top, "rgb", ["rgb"], hw, coords, extra_axis=True)
            _image(g, "rgb", rgb, "uint8", hw, interpretation="rgba-image",
                   colour_space="sRGB", long_name="predicted appearance (sRGB)")
        if trust is not None:
            g = _nxdata(top, "trust", ["trust"], hw, coords)
            _image(g, "trust", trust, "float32", hw, long_name="trust score (higher: less like "
                   "the training data)")
        if masks:
            g = _nxdata(top, "masks", list(masks), hw, coords)
            for n, m in masks.items():
                _image(g, n, np.asarray(m, dtype=bool), "uint8", hw, long_name=f"{n} (0/1)")
        if GROUP in f:
            del f[GROUP]
        f.move(_TMP, GROUP)
        f.attrs["default"] = GROUP  # NeXus readers open the maps first


def exists(path: str | os.PathLike) -> bool:
    with h5py.File(path, "r") as f:
        return GROUP in f


def read(path: str | os.PathLike) -> Predictions:
    """The `predictions` group of a dataset file; KeyError when it has none."""
    with h5py.File(path, "r") as f:
        if GROUP not in f:
            raise KeyError(f"{os.fspath(path)}: no '{GROUP}' group (maps are written at scan "
                           "end, or by `python -m archive reprocess`)")
        top = f[GROUP]
        g = top["elements"]
        names = json.loads(top.attrs["elements"])
        p = Predictions(
            elements={n: g[n][...] for n in names},
            uncertainty={n: g[f"{n}_errors"][...] for n in names if f"{n}_errors" in g},
            rgb=top["rgb/rgb"][...] if "rgb" in top else None,
            trust=top["trust/trust"][...] if "trust" in top else None,
            bundles=json.loads(top.attrs["bundles"]),
            pixel_size_um=float(top.attrs["pixel_size_um"]) if "pixel_size_um" in top.attrs
            else None,
            y=g["y"][...], x=g["x"][...], axis_units=str(g["y"].attrs["units"]),
            attrs={k: v for k, v in top.attrs.items()
                   if k not in ("bundles", "elements", "pixel_size_um")},
        )
        if "masks" in top:
            m = top["masks"]
            for n in [m.attrs["signal"], *m.attrs.get("auxiliary_signals", [])]:
                p.masks[str(n)] = m[str(n)][...].astype(bool)
        return p
