"""PyMca-readable spectra: Amptek PMCA `.mca` files, SPEC files with #@MCA blocks and
single-column files, through PyMca's specfilewrapper. Each MCA (or data column) becomes one
pixel of a 1 x N row.

Times: an Amptek header's `LIVE_TIME` / `REAL_TIME`, or SPEC's `#@CTIME preset live real`.
A live time of 0 (Amptek writes 0 when the DPP did not report it) falls back to the real time
with a warning; a file with neither comes back with no live time (the caller must supply it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PyMca5.PyMcaIO import specfilewrapper

from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts


@dataclass
class McaFile:
    """The spectra of one file with its calibration [offset, gain(, quadratic)] and times."""

    spectra: list[np.ndarray]
    calibration: list[float]
    live_s: float | None
    real_s: float | None
    live_source: str
    warnings: list[str] = field(default_factory=list)


def _numbers(header: list[str]) -> list[float]:
    """Values of a '#@CALIB a b c' / '#@CTIME preset live real' header line, if present."""
    if not header:
        return []
    try:
        return [float(v) for v in header[0].split()[1:]]
    except ValueError:
        return []


def _amptek_value(header: list[str], key: str) -> float | None:
    """`KEY - value` from an Amptek PMCA header; None when absent or not a number."""
    for line in header:
        name, sep, value = line.partition(" - ")
        if sep and name.strip() == key:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _times(scan, path: Path) -> tuple[float | None, float | None, str, list[str]]:
    header = scan.header("") or []
    if header and str(header[0]).startswith("<<"):  # Amptek PMCA
        live, real = _amptek_value(header, "LIVE_TIME"), _amptek_value(header, "REAL_TIME")
        source = "Amptek LIVE_TIME"
    else:
        ctime = _numbers(scan.header("@CTIME"))
        live, real = (ctime[1], ctime[2]) if len(ctime) >= 3 else (None, None)
        source = "#@CTIME"
    for name, value in (("live", live), ("real", real)):
        if value is not None and (not np.isfinite(value) or value < 0):
            raise ReaderError(path, f"negative or non-finite {name} time {value}")
    warnings = []
    if not live and real:
        warnings.append(f"{path.name}: live time is 0 or missing: the real time "
                        f"({real:g} s) is used, so counts per second read low by the dead time")
        live, source = real, "real time (live time 0 or missing)"
    if real is not None and live and real < live * (1 - 1e-6):
        raise ReaderError(path, f"live time {live} s exceeds real time {real} s")
    return live or None, real or None, source, warnings


def read_file(path: str | os.PathLike) -> McaFile:
    path = Path(path)
    try:
        sf = specfilewrapper.Specfile(str(path))
        scans = [sf[i] for i in range(len(sf))]
    except Exception as exc:
        raise ReaderError(path, f"not readable by PyMca ({type(exc).__name__}: {exc})") from exc
    spectra: list[np.ndarray] = []
    calib: list[float] = []
    times: tuple | None = None
    # The wrapper shows a single-column file twice (as a column scan and as an MCA): take the
    # MCAs where there are any, columns only from files without MCA blocks.
    with_mca = [scan for scan in scans if scan.nbmca() > 0]
    for scan in with_mca:
        for i in range(1, scan.nbmca() + 1):
            spectra.append(np.asarray(scan.mca(i), dtype=np.float64))
        calib = calib or _numbers(scan.header("@CALIB"))
        times = times or _times(scan, path)
    for scan in [] if with_mca else scans:  # plain columns: the last one holds the counts
        data = np.atleast_2d(np.asarray(scan.data(), dtype=np.float64))
        if data.shape[0] > 1:
            spectra.append(data[-1])
    if not spectra:
        raise ReaderError(path, "no spectra found")
    if len({s.size for s in spectra}) != 1:
        raise ReaderError(path, f"spectra of different lengths {sorted({s.size for s in spectra})}")
    live, real, source, warnings = times or (None, None, "not in file", [])
    return McaFile(spectra, calib, live, real, source, warnings)


def grid_of(calib: list[float], channels: int, path: Path) -> EnergyGrid | None:
    """Linear calibration, or None; refuse a quadratic term that matters over the range."""
    if len(calib) < 2 or not calib[1] > 0:
        return None
    if len(calib) > 2 and abs(calib[2]) * channels**2 > 1e-3 * calib[1] * channels:
        raise ReaderError(path, f"quadratic calibration {calib} is not supported")
    return EnergyGrid(calib[0], calib[1], channels)


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    mca = read_file(path)
    counts = as_counts(np.stack(mca.spectra)[None], path)
    hw = counts.shape[:2]
    return Scan(
        counts=counts, grid=grid_of(mca.calibration, counts.shape[2], path),
        live_time_s=None if mca.live_s is None else np.full(hw, mca.live_s),
        real_time_s=None if mca.real_s is None else np.full(hw, mca.real_s),
        instrument={"source_format": "pymca" + path.suffix.lower()},
        scan={"source_file": path.name, "live_time_source": mca.live_source},
        warnings=mca.warnings,
    )
