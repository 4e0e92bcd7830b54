"""What the daemon must answer to a fuzzed message, from the protocol's own decoder.

Ingest: every message the fuzzer sends must be refused, with the reason the daemon
counts on `status.errors`; a message that could be accepted (a valid scan_start, a
control, anything for the real scan) is never sent (None), so the real scan that runs
beside the fuzz is untouched and the accounting is exact. Requests: every request gets
one reply; `request_refused` says whether the daemon counts it as a refusal
(`rejected_requests`) and why; None for requests that would do real work (a reload of
the configured models, a snapshot part).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from proto import wire


@dataclass(frozen=True)
class Expect:
    """A message to send and what the daemon must count for it."""

    frames: list[bytes]
    cls: str
    reason: str  # ingest: the refusal reason; requests: "" when not counted as a refusal


def ingest_reason(frames: list[bytes], real_scan: str, max_bytes: int) -> str | None:
    """The reason the daemon refuses these frames on ingest, or None: do not send."""
    if len(frames) != 1:
        return "multipart"
    buf = frames[0]
    if len(buf) > max_bytes:
        return "too_large"
    try:
        msg = wire.decode(buf, max_bytes=max_bytes)
    except wire.ProtocolError as e:
        return e.reason
    if isinstance(msg, wire.Spectra | wire.ScanEnd):
        return None if msg.scan_id == real_scan else "unknown_scan"
    if isinstance(msg, wire.ScanStart | wire.Control):
        return None  # would open a scan (closing the real one) or reload models
    return "unexpected_type"


def outside_root(name: str | None) -> bool:
    """A models name that certainly leaves the models root (what the daemon must refuse)."""
    if not name:
        return False
    norm = posixpath.normpath(name)
    return name.startswith("/") or norm == ".." or norm.startswith("../") or "\x00" in name


def request_refused(body: bytes, max_bytes: int) -> str | None:
    """The refusal reason the daemon counts for this request, "" for one it answers
    without counting (a snapshot, a pixel request), None: do not send."""
    if len(body) > max_bytes // 2:
        return None  # ZeroMQ would drop the connection (ZMQ_MAXMSGSIZE): no reply to count
    try:
        msg = wire.decode(body, max_bytes=max_bytes)
    except wire.ProtocolError as e:
        return e.reason
    if isinstance(msg, wire.SnapshotRequest):
        return None if msg.part else ""
    if isinstance(msg, wire.PixelRequest):
        return ""
    if isinstance(msg, wire.Control):
        return "forbidden_path" if outside_root(msg.models) else None
    return "unexpected_type"
