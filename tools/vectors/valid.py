"""Valid golden vectors: one or more of every message type, in the layouts that matter.

`valid_cases()` are messages the reference encoder writes; `hand_packed_valid()` are
maps it would not write (a future minor version with unknown keys, omitted optional
keys, integers where floats are allowed) that a receiver must still accept.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from proto.wire import (
    Control,
    Error,
    Message,
    PixelReply,
    PixelRequest,
    Preview,
    ScanEnd,
    ScanStart,
    SnapshotReply,
    SnapshotRequest,
    Spectra,
    Status,
)
from tools.vectors.marks import marks_valid


def _arr(values: Any, dtype: str) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


def valid_cases() -> list[tuple[str, Message, str]]:
    """(name, message, layout) for every valid encodable vector."""
    rng = np.random.default_rng(20260101)
    start = ScanStart(
        scan_id="virgin-0001",
        width=64,
        height=48,
        channels=4096,
        offset_kev=-0.0096,
        gain_kev=0.005,
        dwell_s=0.01,
        beam_spot_um=50.0,
        pixel_size_um=100.0,
        instrument={
            "name": "M6 Jetstream",
            "detector": "SDD 30 mm2",
            "tube": {"anode": "Rh", "voltage_kv": 50.0, "current_ua": 600, "filter": None},
            "tags": ["panel", 1, True],
        },
        scan_pattern="serpentine",
        counts_dtype="<u4",
    )
    small_start = ScanStart("s1", 4, 3, 16, 0.0, 0.02, 0.1, 40.0, 50.0)
    dense1 = Spectra(
        "s1",
        1,
        _arr([2], "<u2"),
        _arr([1], "<u2"),
        _arr([0.095], "<f8"),
        _arr([0.1], "<f8"),
        _arr(rng.poisson(4, (1, 16)), "<u4"),
    )
    dense4 = Spectra(
        "s1",
        2,
        _arr([0, 1, 2, 3], "<u4"),
        _arr([2, 2, 2, 2], "<u4"),
        _arr([0.09, 0.091, 0.0925, 0.1], "<f4"),
        _arr([0.1, 0.1, 0.1, 0.1], "<f4"),
        _arr(rng.poisson(20, (4, 8)), "<u2"),
    )
    sparse_counts = np.zeros((3, 32), dtype="<u2")
    sparse_counts[0, [3, 17, 30]] = [1, 2, 1]
    sparse_counts[2, [0, 31]] = [5, 65535]  # pixel 1 has no counts at all
    sparse3 = Spectra(
        "s1",
        3,
        _arr([1, 2, 3], "<u2"),
        _arr([0, 0, 0], "<u2"),
        _arr([0.001, 0.001, 0.0009], "<f8"),
        _arr([0.0011, 0.0011, 0.0011], "<f8"),
        sparse_counts,
    )
    real = Spectra(
        "virgin-0001",
        17,
        _arr([5], "<u2"),
        _arr([7], "<u2"),
        _arr([0.0093], "<f8"),
        _arr([0.01], "<f8"),
        _arr(rng.poisson(3, (1, 4096)), "<u4"),
    )
    rgb = Preview(
        "rgb",
        "s1",
        3,
        (0, 0, 3, 2),
        True,
        ("R", "G", "B"),
        _arr(rng.integers(0, 256, (2, 3, 3)), "|u1"),
    )
    elements = Preview(
        "elements",
        "s1",
        3,
        (1, 1, 2, 2),
        False,
        ("Fe", "Pb"),
        _arr(rng.gamma(2.0, 50.0, (2, 2, 2)), "<f4"),
    )
    trust = Preview(
        "trust", "s1", 3, (2, 0, 1, 3), False, ("trust",), _arr([[0.1], [0.0], [2.5]], "<f4")
    )
    status = Status(
        "s1",
        3,
        "scanning",
        counters={"pixels": 8, "messages": 3, "recorded": 8},
        rates={"pixels_per_s": 80.5},
        latency_ms={"p50": 12.25, "p99": 40.0},
        errors={"bad_value": 1},
        detail={"models": {"rgb": "abc123"}},
    )
    ended = Status(  # idle with a scan_id: that scan has ended (SPEC.md 4.5)
        "s1",
        12,
        "idle",
        counters={"pixels": 12, "messages": 4, "recorded": 12},
        rates={"pixels_per_s": 0.0},
        errors={"bad_value": 1},
    )
    # 1.1: times need only be finite; pixels that cannot be inferred (zero live time, real
    # below live) are valid, recorded and marked by the receiver (SPEC.md 4.2)
    uninferable = Spectra(
        "s1",
        4,
        _arr([0, 1], "<u2"),
        _arr([1, 1], "<u2"),
        _arr([0.0, 0.1], "<f4"),
        _arr([0.1, 0.05], "<f4"),
        _arr(rng.poisson(4, (2, 16)), "<u2"),
    )
    # 1.1: the per-scan accounting a scanner reads (SPEC.md 4.5, "Which counter proves it")
    accounted = Status(
        "s1",
        5,
        "idle",
        counters={"accepted": 9, "rejected_total": 1, "rejected_requests": 0,
                  "rejected_pixels": 1, "not_inferred": 1, "filled": 8,
                  "scan_pixels_accepted": 9, "scan_pixels_recorded": 9,
                  "scan_pixels_refused": 1, "scan_pixels_refused.out_of_range": 1,
                  "scan_pixels_not_inferred": 1, "scan_pixels_not_inferred.live_time": 1,
                  "scan_last_seq": 5, "scan_seq_gaps": 0, "scan_seq_missing": 0},
        errors={"out_of_range": 1},
    )
    # 1.1: the daemon refused scan s2 at its scan_start, and says why (SPEC.md 4.5)
    refused = Status("s2", 0, "idle", counters={"messages": 1, "rejected_total": 1},
                     errors={"scan_refused": 1},
                     refused="counts dtype '<f4' is not uint16 or uint32")
    full_rgb = Preview(
        "rgb", "s1", 3, (0, 0, 4, 3), True, ("R", "G", "B"), np.zeros((3, 4, 3), "|u1")
    )
    full_trust = Preview("trust", "s1", 3, (0, 0, 4, 3), True, ("trust",), np.zeros((3, 4), "<f4"))
    # 1.1: a snapshot in parts (SPEC.md 4.7): part 1 of 2, one tile (row 2) of trust
    tile_trust = Preview("trust", "s1", 3, (0, 2, 4, 1), False, ("trust",),
                         np.zeros((1, 4), "<f4"))
    return [
        ("scan_start_full", start, "auto"),
        ("scan_start_small", small_start, "auto"),
        ("spectra_dense_u4_1px", dense1, "dense"),
        ("spectra_dense_u2_4px_f4", dense4, "dense"),
        ("spectra_sparse_u2_3px", sparse3, "sparse"),
        ("spectra_dense_4096", real, "dense"),
        ("spectra_sparse_4096", real, "sparse"),
        ("spectra_uninferable", uninferable, "dense"),
        ("scan_end_success", ScanEnd("s1", "success", 12), "auto"),
        ("scan_end_abort", ScanEnd("virgin-0001", "abort", 3, "stopped by the operator"), "auto"),
        ("preview_rgb_full", rgb, "auto"),
        ("preview_elements_region", elements, "auto"),
        ("preview_trust_region", trust, "auto"),
        ("status_idle", Status("", 0), "auto"),
        ("status_scanning", status, "auto"),
        ("status_scan_refused", refused, "auto"),
        ("status_scan_ended", ended, "auto"),
        ("status_scan_accounted", accounted, "auto"),
        ("snapshot_request_all", SnapshotRequest(), "auto"),
        ("snapshot_request_rgb", SnapshotRequest(("rgb",)), "auto"),
        ("snapshot_request_part", SnapshotRequest(("trust",), part=1), "auto"),
        ("snapshot_reply_empty", SnapshotReply("", 0, None, ()), "auto"),
        (
            "snapshot_reply_full",
            SnapshotReply("s1", 3, small_start, (full_rgb, full_trust), status),
            "auto",
        ),
        (
            "snapshot_reply_part",
            SnapshotReply("s1", 3, small_start, (tile_trust,), status, part=1, parts=2),
            "auto",
        ),
        ("control_reload", Control("reload_models"), "auto"),
        ("control_reload_folder", Control("reload_models", "models/v2"), "auto"),
        ("pixel_request", PixelRequest("s1", 2, 1), "auto"),
        (
            "pixel_reply",
            PixelReply("s1", 2, 1, dense1.counts[0], 0.0, 0.02, 0.095, 0.1),
            "auto",
        ),
        (
            "error_reply",
            Error("bad_value", "topics.0", "'x' not one of rgb, elements, trust"),
            "auto",
        ),
        *marks_valid(),
    ]


def hand_packed_valid() -> list[tuple[str, bytes, Message]]:
    """Valid messages the reference encoder would not write: (name, bytes, decoded)."""
    future = {
        "type": "scan_end",
        "version": [1, 7],
        "scan_id": "s1",
        "status": "fail",
        "pixel_count": 5,
        "cause": {"code": 17, "text": "added in 1.7"},
        "detail": "tube interlock",
    }
    minimal = {
        "type": "scan_start",
        "version": [1, 0],
        "height": 3,
        "width": 4,
        "scan_id": "s1",
        "channels": 16,
        "offset_kev": 0,
        "gain_kev": 0.02,
        "dwell_s": 0.1,
        "beam_spot_um": 40,
        "pixel_size_um": 50.0,
    }
    return [
        (
            "scan_end_future_minor",
            msgpack.packb(future),
            ScanEnd("s1", "fail", 5, "tube interlock"),
        ),
        (
            "scan_start_minimal_ints",
            msgpack.packb(minimal),
            ScanStart("s1", 4, 3, 16, 0.0, 0.02, 0.1, 40.0, 50.0),
        ),
    ]
