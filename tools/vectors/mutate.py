"""Helpers that break a valid message in one way: wire maps to edit, setters, packing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from proto.wire import Message, to_wire
from tools.vectors.valid import valid_cases

Case = tuple[str, bytes, str, str, str]  # name, bytes, reason, path, why
Mutation = Callable[[dict], None]


def bases() -> dict[str, dict]:
    """Every valid encodable vector as an editable wire map, in its vector's layout."""
    return {name: as_map(msg, layout) for name, msg, layout in valid_cases()}


def as_map(msg: Message, layout: str = "auto") -> dict:
    """A mutable wire map (nested dicts and lists) of a message."""
    return json_roundtrip(to_wire(msg, layout=layout))


def json_roundtrip(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: json_roundtrip(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [json_roundtrip(x) for x in v]
    return v


def mut(base: dict, fn: Mutation) -> bytes:
    """The msgpack bytes of a copy of `base` changed by `fn`."""
    m = copy.deepcopy(base)
    fn(m)
    return msgpack.packb(m, use_bin_type=True)


def put(path: str, value: Any) -> Mutation:
    """Set the dotted `path` (array positions as numbers) to `value`."""

    def fn(m: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            m = m[int(p)] if isinstance(m, list) else m[p]
        if isinstance(m, list):
            m[int(last)] = value
        else:
            m[last] = value

    return fn


def drop(path: str) -> Mutation:
    """Delete the key at the dotted `path`."""

    def fn(m: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            m = m[p]
        del m[last]

    return fn


def typed(a: np.ndarray, dtype: str | None = None) -> dict:
    """A typed-array map of `a`, its dtype string overridable (to forge a wrong one)."""
    a = np.ascontiguousarray(a)
    return {"dtype": dtype or a.dtype.str, "shape": list(a.shape), "bytes": a.tobytes()}
