"""The normative validation primitives of the wire protocol (SPEC.md sections 2, 6, 7).

Scalars, typed arrays, free-form maps and the `type`/`version` header: each check
returns the value (as the decoded message holds it) or raises one
`ProtocolError(path, reason)`. `proto.schema` builds every message's check from
these; `proto.fastpath` accepts a well-formed subset faster and falls back to them.
Pure functions over constant tables: nothing here keeps state between messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from proto.messages import (
    MAX_CONTAINER,
    MAX_COUNT_RATE,
    MAX_DEPTH,
    MAX_ID,
    MAX_STRING,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    ProtocolError,
)

MAJOR = PROTOCOL_VERSION[0]
UINT64_MAX = 2**64 - 1
SEQ_MAX = 2**63 - 1
INF = math.inf
COUNT_DTYPES = ("<u2", "<u4")
COORD_DTYPES = ("<u2", "<u4")
TIME_DTYPES = ("<f4", "<f8")
DTYPES = {s: np.dtype(s) for s in ("|u1", "<u2", "<u4", "<f4", "<f8")}
# dtype string -> (dtype, itemsize), per field kind, for the well-formed fast cases
COORD = {k: (DTYPES[k], DTYPES[k].itemsize) for k in COORD_DTYPES}
TIME = {k: (DTYPES[k], DTYPES[k].itemsize) for k in TIME_DTYPES}
COUNTS = {k: (DTYPES[k], DTYPES[k].itemsize) for k in COUNT_DTYPES}
SCAN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
scan_id_ok = SCAN_ID.fullmatch  # bound once: the hot path calls it per message
new = object.__new__  # instances without running dataclass __init__ (checked already)
_frombuffer = np.frombuffer


def fail(path: str, reason: str, detail: str = "") -> ProtocolError:
    return ProtocolError(path, reason, detail)


# --------------------------------------------------------------------------- scalars


def req(m: dict, key: str, prefix: str) -> Any:
    try:
        return m[key]
    except KeyError:
        raise fail(prefix + key, "missing_field") from None


def integer(v: Any, path: str, lo: int = 0, hi: int = UINT64_MAX) -> int:
    if type(v) is not int:
        raise fail(path, "bad_type", "expected an integer")
    if not lo <= v <= hi:
        raise fail(path, "bad_value", f"{v} outside {lo}..{hi}")
    return v


def number(v: Any, path: str, positive: bool = False) -> float:
    if type(v) is not float and type(v) is not int:
        raise fail(path, "bad_type", "expected a number")
    v = float(v)
    if not -INF < v < INF or (positive and not v > 0):
        raise fail(
            path, "bad_value", f"{v} is not a finite{' positive' if positive else ''} number"
        )
    return v


def text(v: Any, path: str, limit: int = MAX_ID) -> str:
    if type(v) is not str:
        raise fail(path, "bad_type", "expected a string")
    if len(v) > limit:
        raise fail(path, "too_large", f"string longer than {limit}")
    return v


def word(v: Any, path: str, allowed: tuple[str, ...]) -> str:
    if type(v) is not str:
        raise fail(path, "bad_type", "expected a string")
    if v not in allowed:
        raise fail(path, "bad_value", f"{v!r} not one of {', '.join(allowed)}")
    return v


def scan_id(v: Any, path: str, empty_ok: bool = False) -> str:
    if type(v) is not str:
        raise fail(path, "bad_type", "expected a string")
    if v == "" and empty_ok:
        return v
    if scan_id_ok(v) is None:
        raise fail(path, "bad_value", "scan_id must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}")
    return v


def seq(v: Any, path: str, lo: int = 0) -> int:
    return integer(v, path, lo, SEQ_MAX)


def boolean(v: Any, path: str) -> bool:
    if type(v) is not bool:
        raise fail(path, "bad_type", "expected a boolean")
    return v


def texts(v: Any, path: str, limit: int) -> tuple[str, ...]:
    if type(v) is not tuple and type(v) is not list:
        raise fail(path, "bad_type", "expected an array of strings")
    if len(v) > limit:
        raise fail(path, "too_large", f"more than {limit} entries")
    return tuple(text(s, f"{path}.{i}") for i, s in enumerate(v))


def plain(v: Any, path: str, depth: int = 0) -> Any:
    """A JSON-like value (nil, bool, int, finite float, str, array, map with string keys)."""
    if v is None or type(v) is bool:
        return v
    if type(v) is str:
        return text(v, path, MAX_STRING)
    if type(v) is int:
        return integer(v, path, -(2**63), UINT64_MAX)  # what msgpack can carry
    if type(v) is float:
        return number(v, path)
    if depth >= MAX_DEPTH:
        raise fail(path, "too_large", f"nested deeper than {MAX_DEPTH}")
    if type(v) in (tuple, list, dict) and len(v) > MAX_CONTAINER:
        raise fail(path, "too_large", f"more than {MAX_CONTAINER} entries")
    if type(v) is tuple or type(v) is list:
        return [plain(x, f"{path}.{i}", depth + 1) for i, x in enumerate(v)]
    if type(v) is dict:
        return {text(k, path): plain(x, f"{path}.{k}", depth + 1) for k, x in v.items()}
    raise fail(path, "bad_type", f"{type(v).__name__} is not JSON-like")


def free_map(v: Any, path: str) -> dict:
    """A free-form JSON-like map (`instrument`, `detail`)."""
    if type(v) is not dict:
        raise fail(path, "bad_type", "expected a map")
    return plain(v, path)


def str_map(v: Any, path: str, value: Callable[[Any, str], Any]) -> dict:
    if type(v) is not dict:
        raise fail(path, "bad_type", "expected a map")
    return {text(k, path): value(x, f"{path}.{k}") for k, x in v.items()}


def count(v: Any, path: str) -> int:
    return integer(v, path)


def latency(v: Any, path: str) -> float:
    f = number(v, path)
    if f < 0:
        raise fail(path, "bad_value", "latency must be >= 0")
    return f


# --------------------------------------------------------------------------- arrays


def typed_array(v: Any, path: str, dtypes: tuple[str, ...], ndim: int) -> np.ndarray:
    """A typed array {dtype, shape, bytes} -> read-only numpy view on the bytes."""
    if type(v) is not dict:
        raise fail(path, "bad_type", "expected a typed array map")
    try:
        dt, shape, raw = v["dtype"], v["shape"], v["bytes"]
    except KeyError as e:
        raise fail(f"{path}.{e.args[0]}", "missing_field") from None
    if dt not in dtypes:
        if type(dt) is not str:
            raise fail(path + ".dtype", "bad_type", "expected a string")
        raise fail(path + ".dtype", "bad_dtype", f"{dt!r} not one of {', '.join(dtypes)}")
    dtype = DTYPES[dt]
    if (type(shape) is not tuple and type(shape) is not list) or len(shape) != ndim:
        raise fail(path + ".shape", "bad_shape", f"expected {ndim} dimensions")
    size = dtype.itemsize
    for s in shape:
        if type(s) is not int or s < 0:
            raise fail(path + ".shape", "bad_shape", "dimensions must be integers >= 0")
        size *= s
    if type(raw) is not bytes:
        raise fail(path + ".bytes", "bad_type", "expected msgpack bin")
    if len(raw) != size:
        raise fail(path + ".shape", "bad_shape", f"shape needs {size} bytes, got {len(raw)}")
    a = np.frombuffer(raw, dtype)
    return a if ndim == 1 else a.reshape(shape)


def vector(v: Any, p: str, key: str, dtypes: dict[str, tuple[np.dtype, int]]) -> np.ndarray:
    """`typed_array(..., ndim=1)` of column `pixels.<key>`, fast for the well-formed case."""
    try:
        dt, size = dtypes[v["dtype"]]
        shape, raw = v["shape"], v["bytes"]
        if (
            type(shape) is tuple
            and len(shape) == 1
            and type(raw) is bytes
            and type(shape[0]) is int
            and len(raw) == shape[0] * size
        ):
            return _frombuffer(raw, dt)
    except (KeyError, TypeError):
        pass
    return typed_array(v, f"{p}pixels.{key}", tuple(dtypes), 1)


def finite(a: np.ndarray, path: str) -> None:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise fail(path, "bad_value", "NaN or infinity")


# --------------------------------------------------------------------------- header


def header(m: dict, p: str = "") -> str:
    """Check `type` and `version` (first two keys); return the type."""
    keys = iter(m)
    if next(keys, None) == "type" and next(keys, None) == "version":  # fast path
        t, version = m["type"], m["version"]
        if (
            type(version) is tuple
            and len(version) == 2
            and version[0] == MAJOR
            and type(version[0]) is int
            and type(version[1]) is int
            and version[1] >= 0
            and type(t) is str
            and t in MESSAGE_TYPES
        ):
            return t
    keys = iter(m)
    if next(keys, None) != "type" or next(keys, None) != "version":
        if "type" not in m:
            raise fail(p + "type", "missing_field")
        if "version" not in m:
            raise fail(p + "version", "missing_field")
        raise fail(p + "type", "malformed", "`type` and `version` must be the first two keys")
    t, version = m["type"], m["version"]
    if type(t) is not str:
        raise fail(p + "type", "bad_type", "expected a string")
    if (
        (type(version) is not tuple and type(version) is not list)
        or len(version) != 2
        or type(version[0]) is not int
        or type(version[1]) is not int
        or version[0] < 0
        or version[1] < 0
    ):
        raise fail(p + "version", "bad_type", "expected [major, minor]")
    if version[0] != MAJOR:
        raise fail(p + "version", "unsupported_version", f"major {version[0]}, we speak {MAJOR}")
    if t not in MESSAGE_TYPES:
        raise fail(p + "type", "unknown_type", t[:64])
    return t


# --------------------------------------------------------------------------- inference


def uninferable(counts: np.ndarray, live: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(N,) uint8 per pixel: 0 when its numbers can be inferred, else 1 + the index in
    `NOT_INFERRED` of the first rule it fails (SPEC.md 4.2): live time > 0, real time >=
    live time, total count rate <= MAX_COUNT_RATE. Such pixels are still recorded."""
    live = np.asarray(live, dtype=np.float64)
    real = np.asarray(real, dtype=np.float64)
    limit = MAX_COUNT_RATE * live
    # C x the largest count bounds the total: one max pass (~3x cheaper than a widening
    # sum) settles real spectra; the exact total only for pixels the bound cannot clear
    ok_rate = counts.max(axis=1).astype(np.float64) * counts.shape[1] <= limit
    if not ok_rate.all():
        rows = np.flatnonzero(~ok_rate)
        ok_rate[rows] = counts[rows].sum(axis=1, dtype=np.uint64) <= limit[rows]
    ok_live, ok_real = live > 0, real >= live
    marks = np.zeros(live.shape[0], dtype=np.uint8)
    if (ok_live & ok_real & ok_rate).all():
        return marks
    marks[~ok_rate] = 3
    marks[~ok_real] = 2
    marks[~ok_live] = 1
    return marks
