"""A folder of per-pixel spectra, one `.mca` file per pixel (Amptek PMCA, as many lab
scanners save them), read in raster order.

Files are ordered by name with numbers compared as numbers (`px_2` before `px_10`). The grid
is `grid="WxH"` (or just `"W"`: the height follows from the file count); without it the files
form one row, recorded as such. Every file must share the channel count and calibration.
Live time per pixel from each header (`training.readers.mca`); a pixel whose `LIVE_TIME` is 0
takes its real time, and the dataset records which pixels did.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from training.readers import ReaderError, Scan, as_counts
from training.readers.mca import grid_of, read_file


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def parse_grid(grid: str | tuple[int, int] | None, n: int, folder: Path) -> tuple[int, int]:
    """(width, height) for n files from 'WxH', 'W' or (W, H); one row without a grid."""
    if grid is None:
        return n, 1
    if isinstance(grid, str):
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", grid)
        if not match:
            raise ReaderError(folder, f"grid {grid!r} is not WxH (e.g. 40x30) or W")
        width = int(match.group(1))
        height = int(match.group(2)) if match.group(2) else (n // width if width else 0)
    else:
        width, height = grid
    if width < 1 or height < 1 or width * height != n:
        raise ReaderError(folder, f"{n} .mca files do not fill a {width} x {height} grid")
    return width, height


def file_reader(path: str | os.PathLike, grid: str | tuple[int, int] | None = None) -> Scan:
    folder = Path(path)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".mca" and p.is_file()),
                   key=_natural)
    if not files:
        raise ReaderError(folder, "no .mca files in folder")
    width, height = parse_grid(grid, len(files), folder)
    spectra, live, real, warnings, fallback = [], [], [], [], []
    calibration: list[float] | None = None
    for i, file in enumerate(files):
        mca = read_file(file)
        if len(mca.spectra) != 1:
            raise ReaderError(file, f"{len(mca.spectra)} spectra in one pixel file")
        if calibration is None:
            calibration = mca.calibration
        elif not np.allclose(mca.calibration[:2] or [0, 0], calibration[:2] or [0, 0],
                             rtol=1e-6, atol=1e-9):
            raise ReaderError(file, f"calibration {mca.calibration} differs from the first "
                                    f"file's {calibration}")
        spectra.append(mca.spectra[0])
        live.append(np.nan if mca.live_s is None else mca.live_s)
        real.append(np.nan if mca.real_s is None else mca.real_s)
        if mca.warnings:
            fallback.append(i)
    if len({s.size for s in spectra}) != 1:
        raise ReaderError(folder, f"files hold different channel counts "
                                  f"{sorted({s.size for s in spectra})}")
    live_a, real_a = np.array(live), np.array(real)
    if np.isnan(live_a).any() and not np.isnan(live_a).all():
        missing = [files[i].name for i in np.flatnonzero(np.isnan(live_a))[:3]]
        raise ReaderError(folder, f"no live or real time in {missing} (others have one)")
    if fallback:
        warnings.append(f"{len(fallback)} of {len(files)} pixels had LIVE_TIME 0: their real "
                        f"time is used (first: {files[fallback[0]].name})")
    counts = as_counts(np.stack(spectra).reshape(height, width, -1), folder)
    shape = (height, width)
    has_live = not np.isnan(live_a).all()
    real_a = np.where(np.isnan(real_a), live_a, real_a)
    return Scan(
        counts=counts, grid=grid_of(calibration or [], counts.shape[2], files[0]),
        live_time_s=live_a.reshape(shape) if has_live else None,
        real_time_s=real_a.reshape(shape) if has_live else None,
        instrument={"source_format": "mca folder"},
        scan={"source_file": folder.name, "files": len(files), "first_file": files[0].name,
              "grid_source": "given" if grid is not None else "one row (no grid given)",
              "live_time_source": "per-file header" if has_live else "not in files",
              "live_time_fallback_pixels": len(fallback),
              "live_time_fallback_first": [int(i) for i in fallback[:20]]},
        warnings=warnings,
    )
