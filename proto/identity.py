"""Which instrument a stream or a model is for, and how two instruments differ.

`scan_start.instrument` (SPEC.md 4.1) and a bundle manifest's `instruments` (BUNDLE.md) use
one map: `name` and `fingerprint` (proto/INSTRUMENT.md) identify the instrument, and the
description's own tables (`InstrumentDescription.to_dict`) may follow so a receiver can say
what differs. A map without a `fingerprint` identifies nothing (a 1.0 sender's free-form map).
Standard library and proto.instrument only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proto.instrument import InstrumentDescription, InstrumentError

FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
DESCRIPTION_TABLES = ("excitation", "detector", "geometry", "calibration")
MAX_NAME = 256  # characters, as any other name on the wire (SPEC.md 6)


class IdentityError(InstrumentError):
    """A malformed identity map; `key` is the offending key inside it ("" for the map)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key or 'instrument'}: {problem}")
        self.key, self.problem = key, problem


@dataclass(frozen=True)
class Identity:
    name: str
    fingerprint: str
    description: InstrumentDescription | None = None

    @property
    def label(self) -> str:
        """How an operator reads it: 'M6 Jetstream' (fingerprint b2639cdbf6a9)."""
        return f"{self.name!r} (fingerprint {self.fingerprint[:12]})"

    def to_map(self) -> dict[str, Any]:
        return identity_map(self.description) if self.description is not None else {
            "name": self.name, "fingerprint": self.fingerprint}


def identity_map(desc: InstrumentDescription) -> dict[str, Any]:
    """The map a scanner sends as scan_start.instrument and a manifest lists: name,
    fingerprint, then the description's tables."""
    return {"name": desc.name, "fingerprint": desc.fingerprint(), **desc.to_dict()}


def parse_identity(m: Any) -> Identity | None:
    """The identity a map states; None when it has no `fingerprint` (then the map is free-form
    and nothing in it is checked here). Raises IdentityError when a fingerprint is not 64
    lowercase hex digits or has no `name` beside it, or when description tables beside it
    are incomplete or invalid or hash to another fingerprint."""
    if not isinstance(m, Mapping):
        raise IdentityError("", f"must be a map, got {type(m).__name__}")
    name, fingerprint = m.get("name"), m.get("fingerprint")
    if name is not None and (not isinstance(name, str) or not name.strip()
                             or len(name) > MAX_NAME):
        raise IdentityError("name", f"must be a non-empty string of at most {MAX_NAME} "
                                    f"characters, got {name!r}")
    if fingerprint is None:  # free-form (1.0 recommended keys such as `detector` included)
        return None
    tables = [k for k in DESCRIPTION_TABLES if k in m]
    if not isinstance(fingerprint, str) or not FINGERPRINT.match(fingerprint):
        raise IdentityError("fingerprint", f"must be 64 lowercase hex digits, got {fingerprint!r}")
    if name is None:
        raise IdentityError("name", "missing (a fingerprint needs the instrument's name)")
    desc = None
    if tables:
        try:
            desc = InstrumentDescription.from_dict(dict(m), source="instrument")
        except InstrumentError as e:
            raise IdentityError("", str(e).removeprefix("instrument: ")) from None
        if desc.fingerprint() != fingerprint:
            raise IdentityError("fingerprint", f"{fingerprint[:12]}... is not the description's "
                                               f"{desc.fingerprint()[:12]}...")
    return Identity(name, fingerprint, desc)


def differences(a: InstrumentDescription, b: InstrumentDescription, limit: int = 4) -> list[str]:
    """What shapes the spectra differently, as 'excitation.anode W vs Rh' (a's value first),
    in the fingerprint's own units; at most `limit` items, then '... (n more)'."""
    flat_a, flat_b = _flatten(a.model_dict()), _flatten(b.model_dict())
    keys = [k for k in dict.fromkeys([*flat_a, *flat_b]) if flat_a.get(k) != flat_b.get(k)]
    out = [f"{k} {_show(flat_a.get(k))} vs {_show(flat_b.get(k))}" for k in keys[:limit]]
    if len(keys) > limit:
        out.append(f"... ({len(keys) - limit} more)")
    return out


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k not in ("window",):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, Mapping):  # a layer
        return f"{v.get('material')} {v.get('thickness_nm', 0) / 1e3:g} um"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]" if v else "none"
    return str(v)


def stream_instrument(record: Mapping | None) -> dict[str, Any]:
    """What a dataset's `instrument` record (proto/DATASET.md) becomes as scan_start.instrument:
    the identity map when the record holds a valid description (its fingerprint recomputed)
    or is an identity map itself (a recording of an identified stream), else the record as it
    is, less a stale `fingerprint` or `description` (unknown instrument). Nothing is added
    that the record does not say."""
    record = dict(record or {})
    desc = record.get("description")
    if isinstance(desc, Mapping):
        try:
            return identity_map(InstrumentDescription.from_dict(dict(desc)))
        except InstrumentError:
            pass
    try:  # a recording keeps the scan_start's map: an identity already
        ident = parse_identity(record)
    except InstrumentError:
        ident = None
    if ident is not None:
        return ident.to_map()
    return {k: v for k, v in record.items() if k not in ("fingerprint", "description")}
