"""Bruker `.spx` (one spectrum) and `.bcf` (spectrum image) through rosettasciio.

A `.bcf` stores no live or dead time (rosettasciio's documentation says so, and its header
has none): the map's real time is shared per pixel and the live time set equal to it, with
a warning that travels into the dataset (counts per second then read low by the dead time).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rsciio.bruker import file_reader as rsciio_reader

from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts


def _detector(meta: dict) -> dict:
    for mode in ("TEM", "SEM"):
        eds = meta.get("Acquisition_instrument", {}).get(mode, {})
        if eds:
            detector = eds.get("Detector", {}).get("EDS", {})
            return {"beam_energy_kv": eds.get("beam_energy"), **detector}
    return {}


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    try:
        signals = rsciio_reader(str(path))
    except Exception as exc:  # rsciio raises anything from struct errors to XML parse errors
        raise ReaderError(path, f"unreadable Bruker file ({type(exc).__name__}: {exc})") from exc
    spectral = [s for s in signals if s["axes"] and s["axes"][-1].get("units") == "keV"]
    if not spectral:
        raise ReaderError(path, "no spectrum with an energy axis in file")
    sig = spectral[0]
    data = np.asarray(sig["data"])
    axis = sig["axes"][-1]
    grid = EnergyGrid(float(axis["offset"]), float(axis["scale"]), int(axis["size"]))
    det = _detector(sig["metadata"])
    hardware = sig["original_metadata"].get("Hardware", {})
    warnings = []
    if data.ndim == 1:  # .spx: one spectrum, times of the whole acquisition
        counts = data.reshape(1, 1, -1)
        real = float(det.get("real_time", hardware.get("RealTime", 0) / 1000))
        live = float(det.get("live_time", hardware.get("LifeTime", 0) / 1000))
        live_source = "file"
    elif data.ndim == 3:  # .bcf: rsciio gives the map's total real time; share it per pixel
        counts = data
        n = data.shape[0] * data.shape[1]
        real = float(det.get("real_time", 0.0)) / n
        if det.get("live_time"):
            live, live_source = float(det["live_time"]) / n, "file (map total / pixels)"
        else:
            live, live_source = real, "real time (the .bcf has no live time)"
            warnings.append("live time not in the .bcf file: set equal to the real time, so "
                            "counts per live second read low by the dead time")
    else:
        raise ReaderError(path, f"unexpected data shape {data.shape}")
    if not (real > 0 and live > 0):
        raise ReaderError(path, f"missing live/real time (live {live}, real {real})")
    return Scan(
        counts=as_counts(counts, path),
        grid=grid,
        live_time_s=np.full(counts.shape[:2], live),
        real_time_s=np.full(counts.shape[:2], real),
        instrument={"source_format": "bruker" + path.suffix.lower(),
                    "detector": det.get("detector_type"),
                    "beam_energy_kv": det.get("beam_energy_kv"),
                    "elevation_angle_deg": det.get("elevation_angle")},
        scan={"source_file": path.name, "live_time_source": live_source,
              "sample": sig["metadata"].get("Sample", {}).get("name")},
        warnings=warnings,
    )
