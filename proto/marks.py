"""Wire checks of what version 1.1 added to say how far a live picture can be trusted
(SPEC.md 4.1, 4.4, 4.5): the stream's instrument identity in `scan_start`, and the `foreign`
flag, out-of-domain mask and trust threshold on previews and status."""

from __future__ import annotations

from typing import Any

from proto import checks as c
from proto.checks import fail
from proto.identity import IdentityError, parse_identity
from proto.messages import PREVIEW_TOPICS


def check_instrument(v: Any, path: str) -> dict:
    """scan_start.instrument: a JSON-like map; when it has a `fingerprint`, an identity
    (proto.identity: a name, 64 hex digits, and the description's tables if any, valid and
    hashing to that fingerprint)."""
    m = c.free_map(v, path)
    try:
        parse_identity(m)
    except IdentityError as e:
        raise fail(f"{path}.{e.key}" if e.key else path, "bad_value", e.problem) from None
    return m


def preview_marks(m: dict, p: str, h: int, w: int) -> dict:
    """A preview's optional `foreign`, `domain` (|u1 mask of the region) and `threshold`."""
    domain = m.get("domain")
    if domain is not None:
        domain = c.typed_array(domain, p + "domain", ("|u1",), 2)
        if domain.shape != (h, w):
            raise fail(p + "domain.shape", "bad_shape", f"expected {(h, w)}, the region's")
        if domain.size and int(domain.max()) > 1:
            raise fail(p + "domain", "bad_value", "a mask holds 0 or 1")
    threshold = m.get("threshold")
    if threshold is not None:
        threshold = c.number(threshold, p + "threshold")
        if threshold < 0:
            raise fail(p + "threshold", "bad_value", "a score threshold is >= 0")
    return {"foreign": c.boolean(m.get("foreign", False), p + "foreign"), "domain": domain,
            "threshold": threshold}


def status_marks(m: dict, p: str) -> dict:
    """A status's optional `foreign` (topics) and `out_of_domain` (topic -> fraction)."""
    foreign = c.texts(m.get("foreign", ()), p + "foreign", len(PREVIEW_TOPICS))
    for i, t in enumerate(foreign):
        c.word(t, f"{p}foreign.{i}", PREVIEW_TOPICS)
    ood = c.str_map(m.get("out_of_domain", {}), p + "out_of_domain", _fraction)
    for topic in ood:
        c.word(topic, p + "out_of_domain", PREVIEW_TOPICS)
    return {"foreign": foreign, "out_of_domain": ood}


def _fraction(v: Any, path: str) -> float:
    f = c.number(v, path)
    if not 0.0 <= f <= 1.0:
        raise fail(path, "bad_value", "a fraction is in 0..1")
    return f
