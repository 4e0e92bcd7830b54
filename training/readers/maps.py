"""APS MAPS raw HDF5 (XRF-Maps' `MAPS_RAW` layout, e.g. beamline 2-ID-E fly scans).

`MAPS_RAW/data_a`, `data_b`, ... hold one detector element each as (channels, rows, columns):
channels first. `livetime`, `realtime`, `inputcounts` and `ouputcounts` (sic) are
(detectors, rows, columns). Live time as XRF-Maps computes it: real time x output / input
counts (the pile-up and busy losses together), the recorded live time where the input count is
0. Calibration: the `maps_fit_parameters_override.txt` beside the file (MAPS' convention;
`...override.txt<N>` per detector where present), else none.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts

OVERRIDE = "maps_fit_parameters_override.txt"
_TIMES = ("livetime", "realtime", "inputcounts", "ouputcounts")


def is_maps(f: h5py.File) -> bool:
    return isinstance(f.get("MAPS_RAW/data_a"), h5py.Dataset)


def read_override(path: Path) -> dict[str, float]:
    """Numeric `KEY: value` lines of a MAPS fit-parameter override file."""
    values: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_\[\]]*):\s*([-+0-9.eE]+)\s*$", line.strip())
        if match:
            try:
                values[match.group(1)] = float(match.group(2))
            except ValueError:
                continue
    return values


def _calibration(folder: Path, channels: int, detectors: int) -> tuple[EnergyGrid | None, dict]:
    files = [folder / f"{OVERRIDE}{i}" for i in range(detectors)]
    if not all(f.is_file() for f in files):
        files = [folder / OVERRIDE]
    if not files[0].is_file():
        return None, {}
    params = [read_override(f) for f in files]
    grids = []
    for f, p in zip(files, params, strict=True):
        try:
            offset, gain = p["CAL_OFFSET_[E_OFFSET]"], p["CAL_SLOPE_[E_LINEAR]"]
        except KeyError as exc:
            raise ReaderError(f, f"no {exc.args[0]} in the MAPS override file") from exc
        if abs(p.get("CAL_QUAD_[E_QUADRATIC]", 0.0)) * channels**2 > 1e-3 * gain * channels:
            raise ReaderError(f, "quadratic energy calibration is not supported")
        grids.append(EnergyGrid(offset, gain, channels))
    if any(abs(g.gain - grids[0].gain) * channels > grids[0].gain for g in grids):
        raise ReaderError(files[0], "detectors' calibrations differ by more than a channel")
    info = {k: params[0][k] for k in ("COHERENT_SCT_ENERGY", "FWHM_OFFSET", "FWHM_FANOPRIME",
                                      "COMPTON_ANGLE") if k in params[0]}
    return grids[0], {"calibration_source": ", ".join(f.name for f in files), **info}


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            raw = f["MAPS_RAW"]
            names = sorted(k[5:] for k in raw if re.fullmatch(r"data_[a-z]", k))
            cubes = [raw[f"data_{n}"] for n in names]
            if len({c.shape for c in cubes}) != 1 or cubes[0].ndim != 3:
                raise ReaderError(path, f"MAPS_RAW data_* shapes differ or are not 3-D: "
                                        f"{[c.shape for c in cubes]}")
            c, h, w = cubes[0].shape
            counts = np.stack([np.moveaxis(cube[...], 0, -1) for cube in cubes])  # (D,H,W,C)
            times = {}
            for name in _TIMES:
                node = raw.get(name)
                if node is None or node.shape != (len(names), h, w):
                    raise ReaderError(path, f"MAPS_RAW/{name} missing or not "
                                            f"{(len(names), h, w)}")
                times[name] = node[...].astype(np.float64)
    except ReaderError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ReaderError(path, f"unreadable MAPS HDF5 ({exc})") from exc
    real, recorded = times["realtime"], times["livetime"]
    icr, ocr = times["inputcounts"], times["ouputcounts"]
    if (real <= 0).any() or not np.isfinite(real).all():
        raise ReaderError(path, "MAPS_RAW/realtime has non-positive or non-finite values")
    use_ratio = (icr > 0) & (ocr > 0)
    live = np.where(use_ratio, real * ocr / np.where(use_ratio, icr, 1.0), recorded)
    if (live <= 0).any() or (live > real * (1 + 1e-6)).any():
        raise ReaderError(path, "live time outside (0, real time] after the ICR/OCR correction")
    grid, cal_info = _calibration(path.parent, c, len(names))
    return Scan(
        counts=as_counts(counts, path), grid=grid, live_time_s=live, real_time_s=real,
        instrument={"source_format": "maps", "beam_energy_kev": cal_info.pop(
            "COHERENT_SCT_ENERGY", None), **{k.lower(): v for k, v in cal_info.items()
                                             if k != "calibration_source"}},
        scan={"source_file": path.name,
              "calibration_source": cal_info.get("calibration_source", "not in file"),
              "live_time_source": "realtime x ouputcounts / inputcounts (as XRF-Maps); "
                                  f"recorded livetime for {int((~use_ratio).sum())} pixels "
                                  "without input counts"},
        detector_names=tuple(names),
    )
