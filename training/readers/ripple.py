"""Bruker RPL/RAW (what the M6 Jetstream exports) and any Lispix ripple cube, through
rosettasciio's ripple reader.

The `.rpl` header names the cube's layout; calibration comes from `depth-scale` /
`depth-origin` / `depth-units` (HyperSpy's keys) or `ev-per-chan` (the Lispix key, no
offset). Live time per pixel from `live-time` where present (HyperSpy's per-spectrum
convention). What the header lacks is returned as None: the caller supplies it (an
instrument description's calibration, `--live-time`), never a silent default.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rsciio.ripple import file_reader as rsciio_reader

from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts

_TO_KEV = {"kev": 1.0, "ev": 1e-3, "": 1e-3}  # ev-per-chan alone is in eV


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    try:
        signal = rsciio_reader(str(path))[0]
    except Exception as exc:  # rsciio raises IOError, ValueError, KeyError, struct errors
        raise ReaderError(path, f"unreadable ripple file ({type(exc).__name__}: {exc})") \
            from exc
    info = signal["original_metadata"]
    if info.get("record-by") not in ("vector", "image"):
        raise ReaderError(path, f"record-by {info.get('record-by')!r}: not a spectrum cube")
    h, w, c = (int(info[k]) for k in ("height", "width", "depth"))
    data = np.asarray(signal["data"])
    if data.size != h * w * c:
        raise ReaderError(path, f"{data.size} values for {h} x {w} x {c}")
    # rsciio squeezes unit axes; put them back. "image" stores (channel, y, x).
    data = data.reshape(h, w, c) if info["record-by"] == "vector" else \
        np.moveaxis(data.reshape(c, h, w), 0, -1)
    grid, calibration, gain = None, "not in file", None
    units = str(info.get("depth-units", "")).strip().lower()
    if units not in _TO_KEV:
        raise ReaderError(path, f"depth-units {units!r} is not an energy (eV or keV)")
    if "depth-scale" in info:
        gain = float(info["depth-scale"]) * _TO_KEV[units]
    elif "ev-per-chan" in info:
        gain = float(info["ev-per-chan"]) * 1e-3
    if gain is not None and not gain > 0:
        raise ReaderError(path, f"energy scale {gain} keV/channel is not positive")
    if gain and "depth-origin" in info:
        grid = EnergyGrid(float(info["depth-origin"]) * _TO_KEV[units], gain, c)
        calibration = "file"
    elif gain:
        calibration = f"{gain * 1e3:g} eV/channel, no offset in file"
    live = info.get("live-time")
    if live is not None and not float(live) > 0:
        raise ReaderError(path, f"live-time {live} is not positive")
    hw = (h, w)
    return Scan(
        counts=as_counts(data, path), grid=grid,
        live_time_s=None if live is None else np.full(hw, float(live)),
        real_time_s=None,
        instrument={"source_format": "ripple", "beam_energy_kv": info.get("beam-energy"),
                    "detector_peak_width_ev": info.get("detector-peak-width-ev")},
        scan={"source_file": path.name, "calibration_source": calibration,
              "live_time_source": "rpl live-time" if live is not None else "not in file"},
    )
