"""One check per message type (SPEC.md section 4): a wire map -> a validated message.

`CHECKS[type](map, path_prefix)` returns the message or raises `ProtocolError`. These
are the careful paths that define what is valid and name what is not; the decoder
swaps in `proto.fastpath` for `spectra`, which must agree with `check_spectra`.
`check_in_scan` holds the receiver-side rules that need the scan's `scan_start`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from proto import checks as c
from proto.checks import COORD, COUNT_DTYPES, COUNTS, INF, TIME, fail, new
from proto.marks import check_instrument, preview_marks, status_marks
from proto.messages import (
    CONTROL_COMMANDS,
    MAX_CHANNELS,
    MAX_ELEMENTS,
    MAX_HEIGHT,
    MAX_PARTS,
    MAX_PIXELS_PER_MESSAGE,
    MAX_STRING,
    MAX_WIDTH,
    MESSAGE_TYPES,
    PREVIEW_TOPICS,
    SCAN_PATTERNS,
    SCAN_STATUSES,
    STATES,
    Control,
    Error,
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

_ndarray = np.ndarray

PREVIEW_LAYOUT = {  # topic -> (dtype, ndim, names needed or None for "as many as planes")
    "rgb": ("|u1", 3, 3),
    "elements": ("<f4", 3, None),
    "trust": ("<f4", 2, 1),
}


def check_scan_start(m: dict, p: str = "") -> ScanStart:
    o = new(ScanStart)
    o.__dict__.update(
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id"),
        width=c.integer(c.req(m, "width", p), p + "width", 1, MAX_WIDTH),
        height=c.integer(c.req(m, "height", p), p + "height", 1, MAX_HEIGHT),
        channels=c.integer(c.req(m, "channels", p), p + "channels", 1, MAX_CHANNELS),
        offset_kev=c.number(c.req(m, "offset_kev", p), p + "offset_kev"),
        gain_kev=c.number(c.req(m, "gain_kev", p), p + "gain_kev", positive=True),
        dwell_s=c.number(c.req(m, "dwell_s", p), p + "dwell_s", positive=True),
        beam_spot_um=_optional_positive(m, "beam_spot_um", p),
        pixel_size_um=_optional_positive(m, "pixel_size_um", p),
        instrument=check_instrument(m.get("instrument", {}), p + "instrument"),
        scan_pattern=c.word(m.get("scan_pattern", "raster"), p + "scan_pattern", SCAN_PATTERNS),
        counts_dtype=c.word(m.get("counts_dtype", "<u4"), p + "counts_dtype", COUNT_DTYPES),
    )
    return o


def _optional_positive(m: dict, key: str, p: str) -> float | None:
    """1.1: an optional positive number; absent (or nil) means not known."""
    v = m.get(key)
    return None if v is None else c.number(v, p + key, positive=True)


def check_spectra(m: dict, p: str = "") -> Spectra:
    """The careful path: defines what is valid and names what is not."""
    # Paths are only built on failure: string concatenation is measurable at 150k/s.
    try:
        scan_id, seq, px = m["scan_id"], m["seq"], m["pixels"]
    except KeyError as e:
        raise fail(p + e.args[0], "missing_field") from None
    if type(scan_id) is not str or c.scan_id_ok(scan_id) is None:
        c.scan_id(scan_id, p + "scan_id")
    if type(seq) is not int or not 1 <= seq < 2**63:
        c.seq(seq, p + "seq", 1)
    if type(px) is not dict:
        raise fail(p + "pixels", "bad_type", "expected a map")
    try:
        x, y, live, real, counts = (
            px["x"],
            px["y"],
            px["live_time_s"],
            px["real_time_s"],
            px["counts"],
        )
    except KeyError as e:
        raise fail(f"{p}pixels.{e.args[0]}", "missing_field") from None
    x = c.vector(x, p, "x", COORD)
    n = x.shape[0]
    if not 1 <= n <= MAX_PIXELS_PER_MESSAGE:
        what = "too_large" if n else "bad_shape"
        raise fail(p + "pixels.x.shape", what, f"1..{MAX_PIXELS_PER_MESSAGE} pixels per message")
    y = c.vector(y, p, "y", COORD)
    live = c.vector(live, p, "live_time_s", TIME)
    real = c.vector(real, p, "real_time_s", TIME)
    if y.shape[0] != n or live.shape[0] != n or real.shape[0] != n:
        key = "y" if y.shape[0] != n else "live_time_s" if live.shape[0] != n else "real_time_s"
        raise fail(f"{p}pixels.{key}.shape", "bad_shape", "length differs from x")
    # finite is all the wire asks: a pixel whose times cannot be inferred (live <= 0, real <
    # live) is still the scanner's data, recorded and marked by the receiver (SPEC.md 4.2)
    if n == 1:  # scalar compares beat numpy reductions for one pixel
        ok_live, ok_real = -INF < live.item(0) < INF, -INF < real.item(0) < INF
    else:
        ok_live, ok_real = bool(np.isfinite(live).all()), bool(np.isfinite(real).all())
    if not ok_live:
        raise fail(p + "pixels.live_time_s", "bad_value", "live time must be finite")
    if not ok_real:
        raise fail(p + "pixels.real_time_s", "bad_value", "real time must be finite")
    dense = None
    if type(counts) is dict and "layout" not in counts:  # dense, well formed: no detour
        try:
            dt, size = COUNTS[counts["dtype"]]
            shape, raw = counts["shape"], counts["bytes"]
            if (
                type(shape) is tuple
                and len(shape) == 2
                and type(shape[0]) is int
                and shape[0] == n
                and type(shape[1]) is int
                and 1 <= shape[1] <= MAX_CHANNELS
                and type(raw) is bytes
                and len(raw) == n * shape[1] * size
            ):
                dense = _ndarray(shape, dt, raw)
        except (KeyError, TypeError):
            pass
    if dense is None:  # the sparse layout, or the careful path that names what is wrong
        dense = _counts(counts, p + "pixels.counts", n)
    o = new(Spectra)
    d = o.__dict__  # item by item: cheaper than update(**kw)
    d["scan_id"] = scan_id
    d["seq"] = seq
    d["x"] = x
    d["y"] = y
    d["live_time_s"] = live
    d["real_time_s"] = real
    d["counts"] = dense
    return o


def _counts(v: Any, path: str, n: int) -> np.ndarray:
    if type(v) is not dict or v.get("layout", "dense") == "dense":
        dense = c.typed_array(v, path, COUNT_DTYPES, 2)
        if dense.shape[0] != n or not 1 <= dense.shape[1] <= MAX_CHANNELS:
            raise fail(path + ".shape", "bad_shape", "must be (pixels, 1..max channels)")
        return dense
    c.word(v["layout"], path + ".layout", ("csr", "dense"))
    shape = c.req(v, "shape", path + ".")
    if (type(shape) is not tuple and type(shape) is not list) or len(shape) != 2:
        raise fail(path + ".shape", "bad_shape", "expected [pixels, channels]")
    rows, ch = shape
    if type(rows) is not int or type(ch) is not int:
        raise fail(path + ".shape", "bad_shape", "dimensions must be integers")
    if rows != n or not 1 <= ch <= MAX_CHANNELS:
        raise fail(path + ".shape", "bad_shape", "must be (pixels, 1..max channels)")
    indptr = c.typed_array(c.req(v, "indptr", path + "."), path + ".indptr", ("<u4",), 1)
    index = c.typed_array(c.req(v, "index", path + "."), path + ".index", COUNT_DTYPES, 1)
    value = c.typed_array(c.req(v, "value", path + "."), path + ".value", COUNT_DTYPES, 1)
    nnz = index.shape[0]
    if indptr.shape[0] != n + 1:
        raise fail(path + ".indptr.shape", "bad_shape", "indptr needs pixels + 1 entries")
    if value.shape[0] != nnz:
        raise fail(path + ".value.shape", "bad_shape", "value and index lengths differ")
    if nnz > n * ch:
        raise fail(path + ".index.shape", "bad_shape", "more entries than pixels x channels")
    dense = np.zeros(n * ch, dtype=value.dtype)
    if n == 1:  # one pixel (short dwell, one per message): no row bookkeeping
        if indptr[0] != 0 or indptr[1] != nnz:
            raise fail(path + ".indptr", "bad_index", "indptr must rise from 0 to len(index)")
        if nnz and (int(index[-1]) >= ch or (nnz > 1 and not (index[1:] > index[:-1]).all())):
            raise fail(path + ".index", "bad_index", "indices must increase, below channels")
        dense[index] = value
        return dense.reshape(1, ch)
    steps = np.diff(indptr.astype(np.int64))
    if indptr[0] != 0 or indptr[-1] != nnz or (steps < 0).any():
        raise fail(path + ".indptr", "bad_index", "indptr must rise from 0 to len(index)")
    if nnz:
        if int(index.max()) >= ch:
            raise fail(path + ".index", "bad_index", "channel index >= channels")
        flat = np.repeat(np.arange(n, dtype=np.int64) * ch, steps) + index
        if nnz > 1 and not (flat[1:] > flat[:-1]).all():
            raise fail(path + ".index", "bad_index", "indices must increase within a pixel")
        dense[flat] = value
    return dense.reshape(n, ch)


def check_scan_end(m: dict, p: str = "") -> ScanEnd:
    o = new(ScanEnd)
    o.__dict__.update(
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id"),
        status=c.word(c.req(m, "status", p), p + "status", SCAN_STATUSES),
        pixel_count=c.integer(c.req(m, "pixel_count", p), p + "pixel_count", 0,
                              MAX_WIDTH * MAX_HEIGHT),
        detail=c.text(m.get("detail", ""), p + "detail", MAX_STRING),
    )
    return o


def check_preview(m: dict, p: str = "") -> Preview:
    topic = c.word(c.req(m, "topic", p), p + "topic", PREVIEW_TOPICS)
    region = c.req(m, "region", p)
    if (type(region) is not tuple and type(region) is not list) or len(region) != 4:
        raise fail(p + "region", "bad_type", "expected [x0, y0, width, height]")
    x0 = c.integer(region[0], p + "region.0", 0, MAX_WIDTH - 1)
    y0 = c.integer(region[1], p + "region.1", 0, MAX_HEIGHT - 1)
    w = c.integer(region[2], p + "region.2", 1, MAX_WIDTH - x0)
    h = c.integer(region[3], p + "region.3", 1, MAX_HEIGHT - y0)
    full = c.boolean(c.req(m, "full", p), p + "full")
    if full and (x0 or y0):
        raise fail(p + "region", "bad_value", "a full frame starts at 0, 0")
    names = c.texts(c.req(m, "names", p), p + "names", MAX_ELEMENTS)
    dtype, ndim, n_names = PREVIEW_LAYOUT[topic]
    data = c.typed_array(c.req(m, "data", p), p + "data", (dtype,), ndim)
    planes = data.shape[0] if topic == "elements" else 1
    want = {"rgb": (h, w, 3), "elements": (planes, h, w), "trust": (h, w)}[topic]
    if data.shape != want:
        raise fail(p + "data.shape", "bad_shape", f"expected {want} for topic {topic}")
    if len(names) != (n_names or planes) or (topic == "elements" and not planes):
        raise fail(p + "names", "bad_shape", "one name per plane (rgb: 3, trust: 1)")
    c.finite(data, p + "data")
    o = new(Preview)
    o.__dict__.update(
        topic=topic,
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id"),
        seq=c.seq(c.req(m, "seq", p), p + "seq"),
        region=(x0, y0, w, h),
        full=full,
        names=names,
        data=data,
        **preview_marks(m, p, h, w),
    )
    return o


def check_status(m: dict, p: str = "") -> Status:
    o = new(Status)
    o.__dict__.update(
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id", empty_ok=True),
        seq=c.seq(c.req(m, "seq", p), p + "seq"),
        state=c.word(m.get("state", "idle"), p + "state", STATES),
        counters=c.str_map(m.get("counters", {}), p + "counters", c.count),
        rates=c.str_map(m.get("rates", {}), p + "rates", c.number),
        latency_ms=c.str_map(m.get("latency_ms", {}), p + "latency_ms", c.latency),
        errors=c.str_map(m.get("errors", {}), p + "errors", c.count),
        detail=c.free_map(m.get("detail", {}), p + "detail"),
        **status_marks(m, p),
        refused=c.text(m.get("refused", ""), p + "refused", MAX_STRING),
    )
    return o


def check_snapshot_request(m: dict, p: str = "") -> SnapshotRequest:
    topics = c.texts(m.get("topics", PREVIEW_TOPICS), p + "topics", len(PREVIEW_TOPICS))
    for i, t in enumerate(topics):
        c.word(t, f"{p}topics.{i}", PREVIEW_TOPICS)
    o = new(SnapshotRequest)
    o.__dict__.update(topics=topics, part=c.integer(m.get("part", 0), p + "part", 0, MAX_PARTS))
    return o


def check_snapshot_reply(m: dict, p: str = "") -> SnapshotReply:
    start = c.req(m, "scan_start", p)
    frames = c.req(m, "frames", p)
    status = m.get("status")
    if type(frames) is not tuple and type(frames) is not list:
        raise fail(p + "frames", "bad_type", "expected an array of preview maps")
    o = new(SnapshotReply)
    o.__dict__.update(
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id", empty_ok=True),
        seq=c.seq(c.req(m, "seq", p), p + "seq"),
        scan_start=None if start is None else _nested(start, p + "scan_start", "scan_start"),
        frames=tuple(_nested(f, f"{p}frames.{i}", "preview") for i, f in enumerate(frames)),
        status=None if status is None else _nested(status, p + "status", "status"),
    )
    parts = c.integer(m.get("parts", 1), p + "parts", 1, MAX_PARTS)
    o.__dict__.update(part=c.integer(m.get("part", 0), p + "part", 0, parts - 1), parts=parts)
    return o


def _nested(v: Any, path: str, kind: str) -> Any:
    """An embedded message: the same map as on its own, type and version included."""
    if type(v) is not dict:
        raise fail(path, "bad_type", f"expected a {kind} map")
    c.header(v, path + ".")
    if v["type"] != kind:
        raise fail(path + ".type", "bad_value", f"expected {kind}")
    return CHECKS[kind](v, path + ".")


def check_control(m: dict, p: str = "") -> Control:
    models = m.get("models")
    o = new(Control)
    o.__dict__.update(
        command=c.word(c.req(m, "command", p), p + "command", CONTROL_COMMANDS),
        models=None if models is None else c.text(models, p + "models", 4096),
    )
    return o


def check_pixel_request(m: dict, p: str = "") -> PixelRequest:
    o = new(PixelRequest)
    o.__dict__.update(
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id"),
        x=c.integer(c.req(m, "x", p), p + "x", 0, MAX_WIDTH - 1),
        y=c.integer(c.req(m, "y", p), p + "y", 0, MAX_HEIGHT - 1),
    )
    return o


def check_pixel_reply(m: dict, p: str = "") -> PixelReply:
    counts = c.typed_array(c.req(m, "counts", p), p + "counts", COUNT_DTYPES, 1)
    if not 1 <= counts.shape[0] <= MAX_CHANNELS:
        raise fail(p + "counts.shape", "bad_shape", f"1..{MAX_CHANNELS} channels")
    live = c.number(c.req(m, "live_time_s", p), p + "live_time_s")
    real = c.number(c.req(m, "real_time_s", p), p + "real_time_s")
    if not 0 <= live <= real:
        raise fail(p + "real_time_s", "bad_value", "times must be >= 0, real >= live")
    o = new(PixelReply)
    o.__dict__.update(
        scan_id=c.scan_id(c.req(m, "scan_id", p), p + "scan_id"),
        x=c.integer(c.req(m, "x", p), p + "x", 0, MAX_WIDTH - 1),
        y=c.integer(c.req(m, "y", p), p + "y", 0, MAX_HEIGHT - 1),
        counts=counts,
        offset_kev=c.number(c.req(m, "offset_kev", p), p + "offset_kev"),
        gain_kev=c.number(c.req(m, "gain_kev", p), p + "gain_kev", positive=True),
        live_time_s=live,
        real_time_s=real,
    )
    return o


def check_error(m: dict, p: str = "") -> Error:
    o = new(Error)
    o.__dict__.update(
        reason=c.text(c.req(m, "reason", p), p + "reason"),
        path=c.text(m.get("path", ""), p + "path", MAX_STRING),
        detail=c.text(m.get("detail", ""), p + "detail", MAX_STRING),
    )
    return o


CHECKS: dict[str, Callable[[dict, str], Any]] = {
    "scan_start": check_scan_start,
    "spectra": check_spectra,
    "scan_end": check_scan_end,
    "preview": check_preview,
    "status": check_status,
    "snapshot_request": check_snapshot_request,
    "snapshot_reply": check_snapshot_reply,
    "control": check_control,
    "pixel_request": check_pixel_request,
    "pixel_reply": check_pixel_reply,
    "error": check_error,
}
assert set(CHECKS) == set(MESSAGE_TYPES)


def check_in_scan(start: ScanStart, spectra: Spectra) -> None:
    """Receiver-side checks of a spectra message against its scan's scan_start.

    Raises ProtocolError "unknown_scan" (scan_id differs), "bad_shape" (channel
    count differs), "bad_dtype" (counts dtype differs from scan_start.counts_dtype)
    or "out_of_range" (a pixel outside width x height).
    """
    if spectra.scan_id != start.scan_id:
        raise fail("scan_id", "unknown_scan", f"{spectra.scan_id!r} is not {start.scan_id!r}")
    if spectra.counts.shape[1] != start.channels:
        raise fail("pixels.counts.shape", "bad_shape", f"scan has {start.channels} channels")
    if spectra.counts.dtype.str != start.counts_dtype:
        raise fail("pixels.counts.dtype", "bad_dtype", f"scan declared {start.counts_dtype}")
    if int(spectra.x.max()) >= start.width:
        raise fail("pixels.x", "out_of_range", f"x >= width {start.width}")
    if int(spectra.y.max()) >= start.height:
        raise fail("pixels.y", "out_of_range", f"y >= height {start.height}")
