"""PyMca-readable spectra (`.mca`, SPEC files with #@MCA blocks, single-column files) through
PyMca's specfilewrapper. Each MCA (or data column) becomes one pixel of a 1 x N row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PyMca5.PyMcaIO import specfilewrapper

from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts


def _numbers(header: list[str]) -> list[float]:
    """Values of a '#@CALIB a b c' / '#@CTIME preset live real' header line, if present."""
    if not header:
        return []
    try:
        return [float(v) for v in header[0].split()[1:]]
    except ValueError:
        return []


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    try:
        sf = specfilewrapper.Specfile(str(path))
        scans = [sf[i] for i in range(len(sf))]
    except Exception as exc:
        raise ReaderError(path, f"not readable by PyMca ({type(exc).__name__}: {exc})") from exc
    spectra: list[np.ndarray] = []
    calib: list[float] = []
    times: list[float] = []
    # The wrapper shows a single-column file twice (as a column scan and as an MCA): take the
    # MCAs where there are any, columns only from files without MCA blocks.
    with_mca = [scan for scan in scans if scan.nbmca() > 0]
    for scan in with_mca:
        for i in range(1, scan.nbmca() + 1):
            spectra.append(np.asarray(scan.mca(i), dtype=np.float64))
        calib = calib or _numbers(scan.header("@CALIB"))
        times = times or _numbers(scan.header("@CTIME"))
    for scan in [] if with_mca else scans:  # plain columns: the last one holds the counts
        data = np.atleast_2d(np.asarray(scan.data(), dtype=np.float64))
        if data.shape[0] > 1:
            spectra.append(data[-1])
    if not spectra:
        raise ReaderError(path, "no spectra found")
    if len({s.size for s in spectra}) != 1:
        raise ReaderError(path, f"spectra of different lengths {sorted({s.size for s in spectra})}")
    counts = as_counts(np.stack(spectra)[None], path)
    channels = counts.shape[2]
    grid = None
    if len(calib) >= 2 and calib[1] > 0:
        if len(calib) > 2 and abs(calib[2]) * channels**2 > 1e-3 * calib[1] * channels:
            raise ReaderError(path, f"quadratic calibration {calib} is not supported")
        grid = EnergyGrid(calib[0], calib[1], channels)
    live = times[1] if len(times) >= 3 and times[1] > 0 else 1.0
    real = times[2] if len(times) >= 3 and times[2] > 0 else live
    return Scan(
        counts=counts, grid=grid,
        live_time_s=np.full(counts.shape[:2], live), real_time_s=np.full(counts.shape[:2], real),
        instrument={"source_format": "pymca" + path.suffix.lower()},
        scan={"source_file": path.name,
              "live_time_source": "file" if len(times) >= 3 else "unknown, 1 s assumed"},
    )
