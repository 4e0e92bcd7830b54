"""IXRF ATLAS `.GeoPIXE` exports: per-detector sparse pixel records with their dead time.

Layout (as the readoutxfm project parses it): a little-endian uint16 header length, a JSON
header (map size, dwell, channel count and gain, source, detector(s), geometry), then one
record per pixel and detector: "DP", uint32 record length (these 16 header bytes included),
uint16 x, uint16 y, uint16 detector, float32 dead time %, then (uint16 channel, uint16 count)
pairs for the non-zero channels. Live time = dwell x (1 - dead time / 100) per pixel and
detector; detectors stay separate (D, H, W, C). Calibration: the header's gain, offset 0
(the export has no offset).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from proto.energy import EnergyGrid
from training.readers import ReaderError, Scan, as_counts, live_from_dead_time

_RECORD = struct.Struct("<2sIHHHf")  # "DP", record bytes, x, y, detector, dead time %


def _header(raw: bytes, path: Path) -> tuple[dict, int]:
    if len(raw) < 2:
        raise ReaderError(path, "file too short for a GeoPIXE header")
    (n,) = struct.unpack_from("<H", raw)
    if raw[:2] == b"DP" or n < 16 or 2 + n > len(raw):
        raise ReaderError(path, f"no GeoPIXE JSON header (length field {n})")

    def keep_repeats(pairs: list) -> dict:  # one "Detector" section per detector
        out: dict = {}
        for key, value in pairs:
            if key in out:
                out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [value]
            else:
                out[key] = value
        return out

    try:
        header = json.loads(raw[2:2 + n].decode("utf-8"), object_pairs_hook=keep_repeats)
        main = header["File Header"]
        shape = (int(main["Dets"]), int(main["Yres"]), int(main["Xres"]), int(main["Chan"]))
        float(main["Dwell (mS)"]), float(main["Gain (eV)"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ReaderError(path, f"GeoPIXE header unreadable or incomplete ({exc})") from exc
    if min(shape) < 1:
        raise ReaderError(path, f"GeoPIXE header gives an empty map {shape}")
    return header, 2 + n


def file_reader(path: str | os.PathLike) -> Scan:
    path = Path(path)
    raw = path.read_bytes()
    header, pos = _header(raw, path)
    main = header["File Header"]
    d, h, w, c = (int(main[k]) for k in ("Dets", "Yres", "Xres", "Chan"))
    counts = np.zeros((d, h, w, c), np.uint32)
    dead = np.full((d, h, w), np.nan)
    while pos < len(raw):
        if pos + _RECORD.size > len(raw):
            raise ReaderError(path, f"truncated record header at byte {pos}")
        flag, length, x, y, det, dt = _RECORD.unpack_from(raw, pos)
        pos += _RECORD.size
        length -= _RECORD.size
        if flag != b"DP" or length < 0 or length % 4 or pos + length > len(raw):
            raise ReaderError(path, f"bad or truncated pixel record at byte {pos - _RECORD.size}")
        if not (x < w and y < h and det < d):
            raise ReaderError(path, f"record for pixel ({x}, {y}) detector {det} outside "
                                    f"{w} x {h} x {d}")
        pairs = np.frombuffer(raw, "<u2", length // 2, pos).reshape(-1, 2)
        pos += length
        if pairs.size and pairs[:, 0].max() >= c:
            raise ReaderError(path, f"channel {pairs[:, 0].max()} >= {c} in pixel ({x}, {y})")
        np.add.at(counts[det, y, x], pairs[:, 0], pairs[:, 1])
        dead[det, y, x] = dt
    if np.isnan(dead).any():
        missing = np.argwhere(np.isnan(dead))[0]
        raise ReaderError(path, f"{int(np.isnan(dead).sum())} pixel records missing "
                                f"(first: detector {missing[0]}, y {missing[1]}, x {missing[2]})")
    dwell_s = float(main["Dwell (mS)"]) * 1e-3
    source = header.get("X-ray Source", {})
    return Scan(
        counts=as_counts(counts, path),
        grid=EnergyGrid(0.0, float(main["Gain (eV)"]) * 1e-3, c),
        live_time_s=live_from_dead_time(np.full(dead.shape, dwell_s), dead, path),
        real_time_s=np.full(dead.shape, dwell_s),
        instrument={"source_format": "geopixe", "anode": source.get("Elt"),
                    "voltage_kv": source.get("KV"), "current_ua": source.get("UA (µA)"),
                    "spot_um": source.get("Spot (µm)")},
        scan={"source_file": path.name, "dwell_s": dwell_s, "timestamp": main.get("Timestamp"),
              "live_time_source": "dwell x (1 - per-pixel dead time %) per detector",
              "calibration_source": "header gain; offset 0 (not in the export)",
              "pixel_size_um": 1e3 * float(main.get("Width (mm)", 0)) / w or None},
        detector_names=tuple(f"det{i}" for i in range(d)),
    )
