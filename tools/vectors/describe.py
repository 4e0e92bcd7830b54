"""Messages as JSON-ready descriptions (the `.json` beside each vector) and back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

from proto.wire import MESSAGE_TYPES, Message


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


def dumps(desc: dict) -> str:
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
