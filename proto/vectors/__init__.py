"""Golden vectors of wire protocol v1 (SPEC.md section 8) and the script that writes them.

`python -m proto.vectors [folder]` rewrites `valid/` and `invalid/` beside this file
(deterministic: same bytes every run). Each valid ``NAME.msgpack`` has ``NAME.json``:
``{"type", "encode", "fields"}`` where arrays are ``{"dtype", "shape", "values",
"sha256"}`` (values flat, C order; sha256 of the raw little-endian bytes) and
``encode`` is the `proto.wire.encode` options that reproduce the file, or null for a
hand-packed vector the reference encoder would not write (future minor version,
omitted optional keys). Each invalid ``NAME.msgpack`` has ``NAME.json``:
``{"reason", "path", "why"}``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from proto.wire import (
    MESSAGE_TYPES,
    Control,
    Error,
    Message,
    Preview,
    ScanEnd,
    ScanStart,
    SnapshotReply,
    SnapshotRequest,
    Spectra,
    Status,
    encode,
    to_wire,
)

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- descriptions


def describe(msg: Message) -> dict:
    """A message as JSON-ready data: {"type", "fields"}; arrays with values and sha256."""
    fields = {f.name: _describe_value(getattr(msg, f.name)) for f in dataclasses.fields(msg)}
    return {"type": msg.TYPE, "fields": fields}


def _describe_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<"))
        return {
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "values": a.reshape(-1).tolist(),
            "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
        }
    if isinstance(v, Message):
        return describe(v)
    if isinstance(v, tuple | list):
        return [_describe_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _describe_value(x) for k, x in v.items()}
    return v


def build(desc: dict) -> Message:
    """Inverse of `describe`."""
    cls = MESSAGE_TYPES[desc["type"]]
    kw = {}
    for name, v in desc["fields"].items():
        kw[name] = _build_value(name, v)
    return cls(**kw)


_TUPLE_FIELDS = {"region", "names", "topics", "frames"}


def _build_value(name: str, v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"dtype", "shape", "values", "sha256"}:
        return np.array(v["values"], dtype=v["dtype"]).reshape(v["shape"])
    if isinstance(v, dict) and set(v) == {"type", "fields"}:
        return build(v)
    if name in _TUPLE_FIELDS:
        return tuple(_build_value("", x) for x in v)
    return v


# --------------------------------------------------------------------------- valid cases


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
    full_rgb = Preview(
        "rgb", "s1", 3, (0, 0, 4, 3), True, ("R", "G", "B"), np.zeros((3, 4, 3), "|u1")
    )
    full_trust = Preview("trust", "s1", 3, (0, 0, 4, 3), True, ("trust",), np.zeros((3, 4), "<f4"))
    return [
        ("scan_start_full", start, "auto"),
        ("scan_start_small", small_start, "auto"),
        ("spectra_dense_u4_1px", dense1, "dense"),
        ("spectra_dense_u2_4px_f4", dense4, "dense"),
        ("spectra_sparse_u2_3px", sparse3, "sparse"),
        ("spectra_dense_4096", real, "dense"),
        ("spectra_sparse_4096", real, "sparse"),
        ("scan_end_success", ScanEnd("s1", "success", 12), "auto"),
        ("scan_end_abort", ScanEnd("virgin-0001", "abort", 3, "stopped by the operator"), "auto"),
        ("preview_rgb_full", rgb, "auto"),
        ("preview_elements_region", elements, "auto"),
        ("preview_trust_region", trust, "auto"),
        ("status_idle", Status("", 0), "auto"),
        ("status_scanning", status, "auto"),
        ("snapshot_request_all", SnapshotRequest(), "auto"),
        ("snapshot_request_rgb", SnapshotRequest(("rgb",)), "auto"),
        ("snapshot_reply_empty", SnapshotReply("", 0, None, ()), "auto"),
        (
            "snapshot_reply_full",
            SnapshotReply("s1", 3, small_start, (full_rgb, full_trust), status),
            "auto",
        ),
        ("control_reload", Control("reload_models"), "auto"),
        ("control_reload_folder", Control("reload_models", "models/v2"), "auto"),
        (
            "error_reply",
            Error("bad_value", "topics.0", "'x' not one of rgb, elements, trust"),
            "auto",
        ),
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


# --------------------------------------------------------------------------- invalid cases

Mutation = Callable[[dict], Any]


def _w(msg: Message, layout: str = "auto") -> dict:
    """A mutable wire map (nested dicts and lists) of a message."""
    return json_roundtrip(to_wire(msg, layout=layout))


def json_roundtrip(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: json_roundtrip(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [json_roundtrip(x) for x in v]
    return v


def _mut(base: dict, fn: Callable[[dict], None]) -> bytes:
    m = copy.deepcopy(base)
    fn(m)
    return msgpack.packb(m, use_bin_type=True)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def fn(m: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            m = m[int(p)] if isinstance(m, list) else m[p]
        if isinstance(m, list):
            m[int(last)] = value
        else:
            m[last] = value

    return fn


def _drop(path: str) -> Callable[[dict], None]:
    def fn(m: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            m = m[p]
        del m[last]

    return fn


def _typed(a: np.ndarray, dtype: str | None = None) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": dtype or a.dtype.str, "shape": list(a.shape), "bytes": a.tobytes()}


def invalid_cases() -> list[tuple[str, bytes, str, str, str]]:
    """(name, bytes, reason, path, why) for every invalid vector."""
    cases = {c[0]: c[1] for c in valid_cases()}
    start, dense, dense4 = (
        _w(cases["scan_start_small"]),
        _w(cases["spectra_dense_u4_1px"], "dense"),
        _w(cases["spectra_dense_u2_4px_f4"], "dense"),
    )
    sparse = _w(cases["spectra_sparse_u2_3px"], "sparse")
    end, rgb = _w(cases["scan_end_success"]), _w(cases["preview_rgb_full"])
    elements, trust = _w(cases["preview_elements_region"]), _w(cases["preview_trust_region"])
    reply = _w(cases["snapshot_reply_full"])
    good = msgpack.packb(end)
    reordered = {k: end[k] for k in ("version", "type", "scan_id", "status", "pixel_count")}
    nan_live = np.array([np.nan])
    out: list[tuple[str, bytes, str, str, str]] = [
        ("empty", b"", "malformed", "", "no bytes at all"),
        ("not_a_map", msgpack.packb([1, 2, 3]), "malformed", "", "top level is an array"),
        ("trailing_bytes", good + b"\xc0", "malformed", "", "a second object after the map"),
        ("truncated", good[:-3], "malformed", "", "the map ends early"),
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
            _mut(end, _set("detail", "x" * 70000)),
            "too_large",
            "",
            "a str longer than 65536 bytes",
        ),
        (
            "array_over_limit",
            _mut(rgb, _set("names", ["R"] * 5000)),
            "too_large",
            "",
            "an array with more than 4096 entries",
        ),
        ("type_not_first", msgpack.packb(reordered), "malformed", "type", "version before type"),
        ("missing_type", _mut(end, _drop("type")), "missing_field", "type", ""),
        ("missing_version", _mut(end, _drop("version")), "missing_field", "version", ""),
        (
            "major_version_2",
            _mut(end, _set("version", [2, 0])),
            "unsupported_version",
            "version",
            "a different major is refused",
        ),
        ("version_as_string", _mut(end, _set("version", "1.0")), "bad_type", "version", ""),
        ("unknown_type", _mut(end, _set("type", "scan_pause")), "unknown_type", "type", ""),
        ("scan_start_width_zero", _mut(start, _set("width", 0)), "bad_value", "width", ""),
        ("scan_start_width_float", _mut(start, _set("width", 4.0)), "bad_type", "width", ""),
        (
            "scan_start_channels_over_limit",
            _mut(start, _set("channels", 16385)),
            "bad_value",
            "channels",
            "",
        ),
        (
            "scan_start_gain_negative",
            _mut(start, _set("gain_kev", -0.01)),
            "bad_value",
            "gain_kev",
            "",
        ),
        (
            "scan_start_offset_nan",
            _mut(start, _set("offset_kev", float("nan"))),
            "bad_value",
            "offset_kev",
            "",
        ),
        (
            "scan_start_missing_channels",
            _mut(start, _drop("channels")),
            "missing_field",
            "channels",
            "",
        ),
        (
            "scan_start_scan_id_path",
            _mut(start, _set("scan_id", "../../etc/passwd")),
            "bad_value",
            "scan_id",
            "scan ids name files: no path separators",
        ),
        (
            "scan_start_instrument_nan",
            _mut(start, _set("instrument", {"tube": {"voltage_kv": float("nan")}})),
            "bad_value",
            "instrument.tube.voltage_kv",
            "",
        ),
        (
            "scan_start_bad_counts_dtype",
            _mut(start, _set("counts_dtype", "<f4")),
            "bad_value",
            "counts_dtype",
            "",
        ),
        ("spectra_seq_zero", _mut(dense, _set("seq", 0)), "bad_value", "seq", "seq starts at 1"),
        ("spectra_seq_negative", _mut(dense, _set("seq", -4)), "bad_value", "seq", ""),
        (
            "spectra_missing_counts",
            _mut(dense, _drop("pixels.counts")),
            "missing_field",
            "pixels.counts",
            "",
        ),
        (
            "spectra_counts_u8",
            _mut(dense, _set("pixels.counts.dtype", "<u8")),
            "bad_dtype",
            "pixels.counts.dtype",
            "",
        ),
        (
            "spectra_counts_float",
            _mut(dense, _set("pixels.counts", _typed(np.full((1, 16), 1.5, "<f4")))),
            "bad_dtype",
            "pixels.counts.dtype",
            "",
        ),
        (
            "spectra_counts_short_bytes",
            _mut(dense, _set("pixels.counts.bytes", b"\x00" * 60)),
            "bad_shape",
            "pixels.counts.shape",
            "shape [1, 16] needs 64 bytes",
        ),
        (
            "spectra_counts_rows_mismatch",
            _mut(dense, _set("pixels.counts", _typed(np.ones((2, 8), "<u4")))),
            "bad_shape",
            "pixels.counts.shape",
            "2 rows for 1 pixel",
        ),
        (
            "spectra_counts_zero_channels",
            _mut(dense, _set("pixels.counts", _typed(np.ones((1, 0), "<u4")))),
            "bad_shape",
            "pixels.counts.shape",
            "",
        ),
        (
            "spectra_counts_big_endian",
            _mut(dense, _set("pixels.counts.dtype", ">u4")),
            "bad_dtype",
            "pixels.counts.dtype",
            "",
        ),
        (
            "spectra_live_nan",
            _mut(dense, _set("pixels.live_time_s", _typed(nan_live))),
            "bad_value",
            "pixels.live_time_s",
            "",
        ),
        (
            "spectra_live_zero",
            _mut(dense, _set("pixels.live_time_s", _typed(np.zeros(1)))),
            "bad_value",
            "pixels.live_time_s",
            "",
        ),
        (
            "spectra_live_over_real",
            _mut(dense, _set("pixels.live_time_s", _typed(np.array([0.2])))),
            "bad_value",
            "pixels.real_time_s",
            "live time above real time",
        ),
        (
            "spectra_real_infinite",
            _mut(dense4, _set("pixels.real_time_s", _typed(np.full(4, np.inf, "<f4")))),
            "bad_value",
            "pixels.real_time_s",
            "",
        ),
        (
            "spectra_x_signed",
            _mut(dense, _set("pixels.x", _typed(np.array([-1], "<i4")))),
            "bad_dtype",
            "pixels.x.dtype",
            "coordinates are unsigned",
        ),
        (
            "spectra_y_length",
            _mut(dense4, _set("pixels.y", _typed(np.array([1, 2, 3], "<u4")))),
            "bad_shape",
            "pixels.y.shape",
            "",
        ),
        (
            "spectra_too_many_pixels",
            _mut(
                dense,
                lambda m: m["pixels"].update(
                    x=_typed(np.zeros(4097, "<u2")),
                    y=_typed(np.zeros(4097, "<u2")),
                    live_time_s=_typed(np.ones(4097, "<f4")),
                    real_time_s=_typed(np.ones(4097, "<f4")),
                    counts=_typed(np.zeros((4097, 1), "<u2")),
                ),
            ),
            "too_large",
            "pixels.x.shape",
            "",
        ),
        (
            "spectra_pixels_not_map",
            _mut(dense, _set("pixels", [1, 2])),
            "bad_type",
            "pixels",
            "",
        ),
        (
            "sparse_index_unsorted",
            _mut(
                sparse,
                _set("pixels.counts.index", _typed(np.array([17, 3, 30, 0, 31], "<u2"))),
            ),
            "bad_index",
            "pixels.counts.index",
            "",
        ),
        (
            "sparse_index_duplicate",
            _mut(
                sparse,
                _set("pixels.counts.index", _typed(np.array([3, 3, 30, 0, 31], "<u2"))),
            ),
            "bad_index",
            "pixels.counts.index",
            "",
        ),
        (
            "sparse_index_past_channels",
            _mut(
                sparse,
                _set("pixels.counts.index", _typed(np.array([3, 17, 30, 0, 32], "<u2"))),
            ),
            "bad_index",
            "pixels.counts.index",
            "",
        ),
        (
            "sparse_indptr_end",
            _mut(sparse, _set("pixels.counts.indptr", _typed(np.array([0, 3, 3, 4], "<u4")))),
            "bad_index",
            "pixels.counts.indptr",
            "indptr must end at len(index)",
        ),
        (
            "sparse_indptr_decreasing",
            _mut(sparse, _set("pixels.counts.indptr", _typed(np.array([0, 3, 2, 5], "<u4")))),
            "bad_index",
            "pixels.counts.indptr",
            "",
        ),
        (
            "sparse_value_length",
            _mut(sparse, _set("pixels.counts.value", _typed(np.ones(4, "<u2")))),
            "bad_shape",
            "pixels.counts.value.shape",
            "",
        ),
        (
            "sparse_layout_coo",
            _mut(sparse, _set("pixels.counts.layout", "coo")),
            "bad_value",
            "pixels.counts.layout",
            "",
        ),
        ("scan_end_status_ok", _mut(end, _set("status", "ok")), "bad_value", "status", ""),
        (
            "scan_end_count_negative",
            _mut(end, _set("pixel_count", -1)),
            "bad_value",
            "pixel_count",
            "",
        ),
        ("preview_topic_status", _mut(rgb, _set("topic", "status")), "bad_value", "topic", ""),
        (
            "preview_rgb_float",
            _mut(rgb, _set("data", _typed(np.zeros((2, 3, 3), "<f4")))),
            "bad_dtype",
            "data.dtype",
            "",
        ),
        (
            "preview_shape_vs_region",
            _mut(rgb, _set("region", [0, 0, 3, 3])),
            "bad_shape",
            "data.shape",
            "region says 3 rows, data has 2",
        ),
        (
            "preview_elements_names",
            _mut(elements, _set("names", ["Fe"])),
            "bad_shape",
            "names",
            "2 planes, 1 name",
        ),
        (
            "preview_trust_nan",
            _mut(trust, _set("data", _typed(np.full((3, 1), np.nan, "<f4")))),
            "bad_value",
            "data",
            "",
        ),
        (
            "preview_full_offset",
            _mut(trust, _set("full", True)),
            "bad_value",
            "region",
            "a full frame starts at 0, 0",
        ),
        ("preview_full_as_int", _mut(rgb, _set("full", 1)), "bad_type", "full", ""),
        (
            "snapshot_request_topic",
            _mut(_w(SnapshotRequest()), _set("topics", ["rgb", "status"])),
            "bad_value",
            "topics.1",
            "",
        ),
        (
            "snapshot_reply_bad_frame",
            _mut(reply, _set("frames.1.region", [0, 0, 4, 2])),
            "bad_shape",
            "frames.1.data.shape",
            "",
        ),
        (
            "snapshot_reply_start_type",
            _mut(reply, _set("scan_start.type", "scan_end")),
            "bad_value",
            "scan_start.type",
            "",
        ),
        (
            "control_unknown_command",
            _mut(_w(Control("reload_models")), _set("command", "shutdown")),
            "bad_value",
            "command",
            "",
        ),
    ]
    return out


# --------------------------------------------------------------------------- writing


def write(folder: Path = HERE) -> int:
    """Rewrite valid/ and invalid/ under `folder`; returns the number of files written."""
    written = 0
    for sub in ("valid", "invalid"):
        d = folder / sub
        d.mkdir(parents=True, exist_ok=True)
        for old in [*d.glob("*.msgpack"), *d.glob("*.json")]:
            old.unlink()
    for name, msg, layout in valid_cases():
        desc = {"type": msg.TYPE, "encode": {"layout": layout}, **_fields(msg)}
        written += _write_pair(folder / "valid" / name, encode(msg, layout=layout), desc)
    for name, buf, msg in hand_packed_valid():
        desc = {"type": msg.TYPE, "encode": None, **_fields(msg)}
        written += _write_pair(folder / "valid" / name, buf, desc)
    for name, buf, reason, path, why in invalid_cases():
        written += _write_pair(
            folder / "invalid" / name, buf, {"reason": reason, "path": path, "why": why}
        )
    return written


def _fields(msg: Message) -> dict:
    return {"fields": describe(msg)["fields"]}


def _write_pair(stem: Path, buf: bytes, desc: dict) -> int:
    stem.with_suffix(".msgpack").write_bytes(buf)
    stem.with_suffix(".json").write_text(_dumps(desc) + "\n")
    return 2


def _dumps(desc: dict) -> str:
    """Indented JSON with each array's `values` on one line (readable and small)."""
    flat: list[str] = []

    def hide(v: Any) -> Any:
        if isinstance(v, dict):
            if "values" in v and "sha256" in v:
                flat.append(json.dumps(v["values"], allow_nan=False))
                return {**v, "values": f"@@{len(flat) - 1}@@"}
            return {k: hide(x) for k, x in v.items()}
        if isinstance(v, list):
            return [hide(x) for x in v]
        return v

    text = json.dumps(hide(desc), indent=1, allow_nan=False)
    for i, values in enumerate(flat):
        text = text.replace(f'"@@{i}@@"', values, 1)
    return text
