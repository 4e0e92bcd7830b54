"""`python -m edge export-maps RECORDING --tiff DIR`: a recording's `predictions` group as
files that ImageJ/Fiji, napari, QGIS or any image tool opens: one 32-bit float TIFF per
element map (counts/s) and per uncertainty map, trust as float TIFF, masks as 8-bit TIFF,
and the RGB as TIFF and PNG. The pixel size, when known, is the TIFFs' resolution.

tifffile is an optional extra (`pip install '.[maps]'`): the daemon never needs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.png import write_png
from proto import predictions


class ExportError(Exception):
    """What the user must fix, in one line."""


def _tifffile():
    try:
        import tifffile
    except ImportError as e:
        raise ExportError("export-maps needs tifffile: pip install '.[maps]'") from e
    return tifffile


def export_maps(recording: str | Path, tiff_dir: str | Path) -> list[Path]:
    """Write the TIFFs (and rgb.png) of `recording`'s predictions into `tiff_dir`."""
    tifffile = _tifffile()
    if not Path(recording).is_file():
        raise ExportError(f"no such recording: {recording}")
    try:
        p = predictions.read(recording)
    except KeyError as e:
        raise ExportError(e.args[0]) from e
    except (OSError, ValueError) as e:
        raise ExportError(f"{recording}: cannot read: {e}") from e
    out = Path(tiff_dir)
    out.mkdir(parents=True, exist_ok=True)
    options: dict = {}
    if p.pixel_size_um:  # pixels per centimetre, the unit TIFF readers understand
        per_cm = 1e4 / p.pixel_size_um
        options = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    written: list[Path] = []

    def tiff(name: str, data: np.ndarray, photometric: str = "minisblack", **meta: object) -> None:
        path = out / f"{name}.tif"
        tifffile.imwrite(path, data, photometric=photometric, metadata=None, **options,
                         description=json.dumps({**meta, "source": Path(recording).name,
                                                 "bundles": p.bundles}))
        written.append(path)

    for el, m in p.elements.items():
        tiff(el, m.astype(np.float32, copy=False), element=el, units="counts/s")
    for el, m in p.uncertainty.items():
        tiff(f"{el}_uncertainty", m.astype(np.float32, copy=False), element=el,
             units="counts/s", quantity="1 sigma")
    if p.trust is not None:
        tiff("trust", p.trust.astype(np.float32, copy=False), quantity="trust score")
    for name, mask in p.masks.items():
        tiff(f"mask_{name}", mask.astype(np.uint8), quantity=f"{name} (0/1)")
    if p.rgb is not None:
        tiff("rgb", p.rgb, "rgb", quantity="predicted appearance", colour_space="sRGB")
        written.append(write_png(out / "rgb.png", p.rgb))
    return written
