"""The reference encoder: a message -> its msgpack map (keys in SPEC order) -> bytes.

`encode` validates what it writes with the decoder's own checks, so whatever it
emits `decode` accepts. Output is deterministic: fixed key order, smallest msgpack
integers, floats as float64.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from proto.checks import DTYPES, fail, header
from proto.fastpath import FAST_CHECKS
from proto.messages import (
    PROTOCOL_VERSION,
    Message,
    PixelReply,
    Preview,
    SnapshotReply,
    SnapshotRequest,
    Spectra,
)
from proto.schema import PREVIEW_LAYOUT

# key order of the messages written field by field (SPEC.md section 4)
_FIELDS = {
    "scan_start": (
        "scan_id",
        "width",
        "height",
        "channels",
        "offset_kev",
        "gain_kev",
        "dwell_s",
        "beam_spot_um",
        "pixel_size_um",
        "counts_dtype",
        "scan_pattern",
        "instrument",
    ),
    "scan_end": ("scan_id", "status", "pixel_count", "detail"),
    "status": ("scan_id", "seq", "state", "counters", "rates", "latency_ms", "errors", "detail",
               "foreign", "out_of_domain", "refused"),
    "control": ("command", "models"),
    "pixel_request": ("scan_id", "x", "y"),
    "error": ("reason", "path", "detail"),
}
# optional fields (1.1) written only when they say something, so 1.0 messages keep their bytes
_OMIT_EMPTY = {"beam_spot_um", "pixel_size_um", "foreign", "out_of_domain", "refused"}
_FLOAT_FIELDS = {"offset_kev", "gain_kev", "dwell_s", "beam_spot_um", "pixel_size_um",
                 "live_time_s", "real_time_s"}


def encode(msg: Message, *, layout: str = "auto") -> bytes:
    """A message -> msgpack bytes, validated by the same checks as `decode`.

    `layout` picks the counts encoding of `Spectra`: "dense", "sparse" (CSR) or
    "auto" (sparse when it is at most half the dense size: short dwells).
    """
    wire = to_wire(msg, layout=layout)
    FAST_CHECKS[header(wire)](wire, "")
    return msgpack.packb(wire, use_bin_type=True)


def to_wire(msg: Message, *, layout: str = "auto") -> dict:
    """The msgpack map of a message, keys in their fixed order (not yet validated)."""
    head: dict[str, Any] = {"type": msg.TYPE, "version": PROTOCOL_VERSION}
    if isinstance(msg, Spectra):
        head.update(scan_id=msg.scan_id, seq=_py(msg.seq), pixels=_wire_pixels(msg, layout))
    elif isinstance(msg, Preview):
        dtype = PREVIEW_LAYOUT.get(msg.topic, ("<f4",))[0]
        head.update(
            topic=msg.topic,
            scan_id=msg.scan_id,
            seq=_py(msg.seq),
            region=tuple(_py(r) for r in msg.region),
            full=_py(msg.full),
            names=tuple(msg.names),
            data=wire_array(msg.data, dtype, "data"),
        )
        if msg.foreign:
            head["foreign"] = True
        if msg.domain is not None:
            head["domain"] = wire_array(msg.domain, "|u1", "domain")
        if msg.threshold is not None:
            head["threshold"] = float(_py(msg.threshold))
    elif isinstance(msg, SnapshotReply):
        head.update(
            scan_id=msg.scan_id,
            seq=_py(msg.seq),
            scan_start=None if msg.scan_start is None else to_wire(msg.scan_start),
            frames=tuple(to_wire(f) for f in msg.frames),
            status=None if msg.status is None else to_wire(msg.status),
        )
        if msg.parts != 1 or msg.part:  # 1.1, only when the snapshot takes several replies
            head.update(part=_py(msg.part), parts=_py(msg.parts))
    elif isinstance(msg, PixelReply):
        counts = np.asarray(msg.counts)
        cdt = "<u2" if counts.dtype.itemsize <= 2 and counts.dtype.kind == "u" else "<u4"
        _fits_u4(counts, "counts")
        head.update(scan_id=msg.scan_id, x=_py(msg.x), y=_py(msg.y),
                    counts=wire_array(counts, cdt))
        for name in ("offset_kev", "gain_kev", "live_time_s", "real_time_s"):
            head[name] = float(_py(getattr(msg, name)))
    elif isinstance(msg, SnapshotRequest):
        head["topics"] = tuple(msg.topics)
        if msg.part:  # 1.1
            head["part"] = _py(msg.part)
    elif isinstance(msg, Message) and msg.TYPE in _FIELDS:
        for name in _FIELDS[msg.TYPE]:
            v = _py(getattr(msg, name))
            if name in _OMIT_EMPTY and (v is None or v == [] or v == {} or v == ""):
                continue
            head[name] = float(v) if name in _FLOAT_FIELDS and type(v) is int else v
    else:
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return head


def wire_array(a: Any, dtype: str, path: str = "") -> dict:
    """An array as a typed array map; with `path`, refuse a dtype of another kind."""
    a = np.asarray(a)
    want = DTYPES[dtype]
    if path and (a.dtype.kind != want.kind or (want.kind == "u" and a.dtype.itemsize > 1)):
        raise fail(path + ".dtype", "bad_dtype", f"expected {dtype}, got {a.dtype.str}")
    a = np.ascontiguousarray(a, dtype=want)
    return {"dtype": dtype, "shape": tuple(a.shape), "bytes": a.tobytes()}


def _py(v: Any) -> Any:
    """numpy scalars -> Python scalars; containers recursively (so msgpack can pack them)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _py(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_py(x) for x in v]
    return v


def _wire_pixels(msg: Spectra, layout: str) -> dict:
    counts = np.asarray(msg.counts)
    if counts.ndim != 2:
        raise fail("pixels.counts.shape", "bad_shape", "counts must be (pixels, channels)")
    if counts.dtype.kind not in "ui":
        raise fail("pixels.counts.dtype", "bad_dtype", "counts must be uint16 or uint32")
    cdt = "<u2" if counts.dtype.itemsize <= 2 and counts.dtype.kind == "u" else "<u4"
    _fits_u4(counts, "pixels.counts")
    x, y = np.asarray(msg.x), np.asarray(msg.y)
    for name, a in (("x", x), ("y", y)):
        if a.dtype.kind not in "ui":
            raise fail(f"pixels.{name}", "bad_value", "coordinates are integers >= 0")
        _fits_u4(a, f"pixels.{name}")
    pixels = {
        "x": wire_array(x, _small_uint(x)),
        "y": wire_array(y, _small_uint(y)),
        "live_time_s": wire_array(msg.live_time_s, _float_dtype(msg.live_time_s)),
        "real_time_s": wire_array(msg.real_time_s, _float_dtype(msg.real_time_s)),
    }
    if layout not in ("auto", "dense", "sparse"):
        raise ValueError(f"layout must be auto, dense or sparse, not {layout!r}")
    n, c = counts.shape
    if layout != "dense":
        nnz = int(np.count_nonzero(counts))
        index_dt = "<u2" if c <= 0x10000 else "<u4"
        sparse_size = 4 * (n + 1) + nnz * (int(index_dt[-1]) + int(cdt[-1]))
        if layout == "sparse" or 2 * sparse_size <= counts.size * int(cdt[-1]):
            rows, cols = np.nonzero(counts)
            indptr = np.zeros(n + 1, dtype="<u4")
            np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
            pixels["counts"] = {
                "layout": "csr",
                "shape": (n, c),
                "indptr": wire_array(indptr, "<u4"),
                "index": wire_array(cols, index_dt),
                "value": wire_array(counts[rows, cols], cdt),
            }
            return pixels
    pixels["counts"] = wire_array(counts, cdt)
    return pixels


def _fits_u4(a: np.ndarray, path: str) -> None:
    """Integers that are not already uint8/16/32 must fit one (the wire has no signed ints)."""
    wide = a.dtype.kind == "i" or a.dtype.itemsize > 4
    if wide and a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
        raise fail(path, "bad_value", "must be integers in 0..2**32-1")


def _small_uint(a: np.ndarray) -> str:
    return "<u2" if a.dtype.itemsize <= 2 and a.dtype.kind == "u" else "<u4"


def _float_dtype(a: Any) -> str:
    a = np.asarray(a)
    return "<f4" if a.dtype == np.float32 else "<f8"
