"""Invalid golden vectors: each a valid message broken in one way, with its reason and path.

`invalid_cases()` gives (name, bytes, reason, path, why); the spectra cases live in
`tools.vectors.invalid_spectra`. Order is the files' listing order, nothing more.
"""

from __future__ import annotations

import msgpack
import numpy as np

from proto.wire import Control, SnapshotRequest
from tools.vectors.invalid_marks import marks_invalid
from tools.vectors.invalid_spectra import spectra_cases
from tools.vectors.mutate import Case, as_map, bases, drop, mut, put, typed


def invalid_cases() -> list[Case]:
    """(name, bytes, reason, path, why) for every invalid vector."""
    return [*_framing_cases(), *spectra_cases(), *_other_cases(), *marks_invalid(bases())]


def _framing_cases() -> list[Case]:
    """Bytes that are not one message map, the `type`/`version` header, `scan_start`."""
    b = bases()
    start, end = b["scan_start_small"], b["scan_end_success"]
    rgb = b["preview_rgb_full"]
    good = msgpack.packb(end)
    reordered = {k: end[k] for k in ("version", "type", "scan_id", "status", "pixel_count")}
    return [
        ("empty", b"", "malformed", "", "no bytes at all"),
        ("not_a_map", msgpack.packb([1, 2, 3]), "malformed", "", "top level is an array"),
        ("trailing_bytes", good + b"\xc0", "malformed", "", "a second object after the map"),
        ("truncated", good[:-3], "malformed", "", "the map ends early"),
        (
            "duplicate_key",
            b"\x86" + b"".join(msgpack.packb(v) for v in (
                "type", "scan_end", "version", [1, 1], "scan_id", "s1", "status", "success",
                "pixel_count", 12, "status", "abort")),
            "malformed",
            "",
            "a key twice in one map (1.1): which value counts would differ between decoders",
        ),
        (
            "forged_bin_length",
            b"\x83\xa4type\xa7spectra\xa7version\x92\x01\x00\xa6pixels\xc6\x7f\xff\xff\xff",
            "malformed",
            "",
            "a bin header claims 2 GiB in a 40-byte message (must not allocate)",
        ),
        (
            "ext_type",
            msgpack.packb({"type": "scan_end", "version": [1, 0], "x": msgpack.ExtType(5, b"ab")}),
            "malformed",
            "",
            "msgpack ext types are not used",
        ),
        (
            "int_map_key",
            msgpack.packb({"type": "scan_end", "version": [1, 0], 1: 2}),
            "malformed",
            "",
            "map keys are strings",
        ),
        (
            "invalid_utf8",
            b"\x82\xa4type\xa3\xff\xfe\xfd\xa7version\x92\x01\x00",
            "malformed",
            "",
            "str that is not UTF-8",
        ),
        (
            "string_over_limit",
            mut(end, put("detail", "x" * 70000)),
            "too_large",
            "",
            "a str longer than 65536 bytes",
        ),
        (
            "array_over_limit",
            mut(rgb, put("names", ["R"] * 5000)),
            "too_large",
            "",
            "an array with more than 4096 entries",
        ),
        ("type_not_first", msgpack.packb(reordered), "malformed", "type", "version before type"),
        ("missing_type", mut(end, drop("type")), "missing_field", "type", ""),
        ("missing_version", mut(end, drop("version")), "missing_field", "version", ""),
        (
            "major_version_2",
            mut(end, put("version", [2, 0])),
            "unsupported_version",
            "version",
            "a different major is refused",
        ),
        ("version_as_string", mut(end, put("version", "1.0")), "bad_type", "version", ""),
        ("unknown_type", mut(end, put("type", "scan_pause")), "unknown_type", "type", ""),
        ("scan_start_width_zero", mut(start, put("width", 0)), "bad_value", "width", ""),
        ("scan_start_width_float", mut(start, put("width", 4.0)), "bad_type", "width", ""),
        (
            "scan_start_channels_over_limit",
            mut(start, put("channels", 16385)),
            "bad_value",
            "channels",
            "",
        ),
        (
            "scan_start_gain_negative",
            mut(start, put("gain_kev", -0.01)),
            "bad_value",
            "gain_kev",
            "",
        ),
        (
            "scan_start_offset_nan",
            mut(start, put("offset_kev", float("nan"))),
            "bad_value",
            "offset_kev",
            "",
        ),
        (
            "scan_start_missing_channels",
            mut(start, drop("channels")),
            "missing_field",
            "channels",
            "",
        ),
        (
            "scan_start_scan_id_path",
            mut(start, put("scan_id", "../../etc/passwd")),
            "bad_value",
            "scan_id",
            "scan ids name files: no path separators",
        ),
        (
            "scan_start_instrument_nan",
            mut(start, put("instrument", {"tube": {"voltage_kv": float("nan")}})),
            "bad_value",
            "instrument.tube.voltage_kv",
            "",
        ),
        (
            "scan_start_bad_counts_dtype",
            mut(start, put("counts_dtype", "<f4")),
            "bad_value",
            "counts_dtype",
            "",
        ),
    ]


def _other_cases() -> list[Case]:
    """`scan_end`, `preview`, the snapshot messages and `control`."""
    b = bases()
    end, rgb = b["scan_end_success"], b["preview_rgb_full"]
    elements, trust = b["preview_elements_region"], b["preview_trust_region"]
    reply = b["snapshot_reply_full"]
    pixel, pixel_reply = b["pixel_request"], b["pixel_reply"]
    return [
        ("scan_end_status_ok", mut(end, put("status", "ok")), "bad_value", "status", ""),
        (
            "scan_end_count_negative",
            mut(end, put("pixel_count", -1)),
            "bad_value",
            "pixel_count",
            "",
        ),
        ("preview_topic_status", mut(rgb, put("topic", "status")), "bad_value", "topic", ""),
        (
            "preview_rgb_float",
            mut(rgb, put("data", typed(np.zeros((2, 3, 3), "<f4")))),
            "bad_dtype",
            "data.dtype",
            "",
        ),
        (
            "preview_shape_vs_region",
            mut(rgb, put("region", [0, 0, 3, 3])),
            "bad_shape",
            "data.shape",
            "region says 3 rows, data has 2",
        ),
        (
            "preview_elements_names",
            mut(elements, put("names", ["Fe"])),
            "bad_shape",
            "names",
            "2 planes, 1 name",
        ),
        (
            "preview_trust_nan",
            mut(trust, put("data", typed(np.full((3, 1), np.nan, "<f4")))),
            "bad_value",
            "data",
            "",
        ),
        (
            "preview_full_offset",
            mut(trust, put("full", True)),
            "bad_value",
            "region",
            "a full frame starts at 0, 0",
        ),
        ("preview_full_as_int", mut(rgb, put("full", 1)), "bad_type", "full", ""),
        (
            "snapshot_request_topic",
            mut(as_map(SnapshotRequest()), put("topics", ["rgb", "status"])),
            "bad_value",
            "topics.1",
            "",
        ),
        (
            "snapshot_reply_bad_frame",
            mut(reply, put("frames.1.region", [0, 0, 4, 2])),
            "bad_shape",
            "frames.1.data.shape",
            "",
        ),
        (
            "snapshot_reply_part_beyond",  # 1.1: part counts from 0 and stays below parts
            mut(reply, lambda m: m.update(part=2, parts=2)),
            "bad_value",
            "part",
            "",
        ),
        (
            "snapshot_reply_start_type",
            mut(reply, put("scan_start.type", "scan_end")),
            "bad_value",
            "scan_start.type",
            "",
        ),
        (
            "control_unknown_command",
            mut(as_map(Control("reload_models")), put("command", "shutdown")),
            "bad_value",
            "command",
            "",
        ),
        ("pixel_request_x_float", mut(pixel, put("x", 2.0)), "bad_type", "x", ""),
        ("pixel_request_missing_y", mut(pixel, drop("y")), "missing_field", "y", ""),
        (
            "pixel_reply_counts_float",
            mut(pixel_reply, put("counts", typed(np.zeros(16, "<f4")))),
            "bad_dtype",
            "counts.dtype",
            "counts are the recorded integers",
        ),
        (
            "pixel_reply_counts_2d",
            mut(pixel_reply, put("counts", typed(np.zeros((1, 16), "<u4")))),
            "bad_shape",
            "counts.shape",
            "one spectrum, shape [C]",
        ),
        (
            "pixel_reply_real_below_live",
            mut(pixel_reply, put("real_time_s", 0.05)),
            "bad_value",
            "real_time_s",
            "",
        ),
    ]
