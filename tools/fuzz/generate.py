"""Hostile messages by class, drawn from a `random.Random` (a seed or hypothesis replays them).

Ingest classes: `random_bytes`, `mutated_vector` (a golden vector's bytes flipped, cut,
spliced), `mutated_field` (a valid message's map with keys dropped, values replaced by
hostile ones, unknown keys added), `foreign_valid` (valid spectra and scan_end of scans
nobody opened, valid messages of types that do not belong on ingest), `multipart`, and
`too_large` (over the daemon's counted size limit, under ZeroMQ's frame limit).
Request classes: `random_bytes`, `mutated_request`, `hostile_reload` (paths out of the
models root), `pixel_request`, `snapshot`, `wrong_type`.
"""

from __future__ import annotations

import copy
import random
from functools import cache
from pathlib import Path
from typing import Any

import msgpack

import proto
from tools.vectors.mutate import bases

VECTORS = Path(proto.__file__).resolve().parent / "vectors"
INGEST_CLASSES = ("random_bytes", "mutated_vector", "mutated_field", "foreign_valid",
                  "multipart", "too_large")
REQUEST_CLASSES = ("random_bytes", "mutated_request", "hostile_reload", "pixel_request",
                   "snapshot", "wrong_type")
VERSION = [1, 1]
# msgpack headers and boundary values: where a decoder's length and type logic lives
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3,
               0xC4, 0xC6, 0xCA, 0xCB, 0xCF, 0xD3, 0xD4, 0xD9, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF,
               0xFF)
HOSTILE: tuple[Any, ...] = (
    None, True, False, -1, 0, 1, 2**32, 2**64 - 1, -(2**63), 0.5, -0.0, 1e308, float("nan"),
    float("inf"), "", "x" * 300, "../../etc/passwd", "\u0000", b"", b"\x00" * 17, [], {},
    [None] * 5, {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}},
    {"dtype": "<f8", "shape": [2**31, 2**31], "bytes": b"\x00" * 8},
)
FOREIGN = ("spectra_dense_u2_4px_f4", "spectra_sparse_u2_3px", "spectra_uninferable",
           "spectra_dense_u4_1px", "scan_end_success", "scan_end_abort", "preview_rgb_full",
           "preview_trust_region", "status_idle", "status_scanning", "snapshot_request_all",
           "snapshot_reply_empty", "pixel_reply", "pixel_request", "error_reply")
WRONG_ON_REQUESTS = ("scan_start_small", "spectra_dense_u2_4px_f4", "scan_end_success",
                     "preview_rgb_full", "status_idle", "snapshot_reply_empty", "error_reply")
REQUEST_VECTORS = ("snapshot_request", "control", "pixel_request")


@cache
def vectors() -> tuple[bytes, ...]:
    """Every golden vector's bytes, valid and invalid."""
    return tuple(p.read_bytes() for p in sorted(VECTORS.glob("*/*.msgpack")))


@cache
def request_vectors() -> tuple[bytes, ...]:
    return tuple(p.read_bytes() for p in sorted(VECTORS.glob("*/*.msgpack"))
                 if p.stem.startswith(REQUEST_VECTORS))


@cache
def maps() -> dict[str, dict]:
    """Valid messages as editable wire maps (tools.vectors)."""
    return bases()


def pack(m: Any) -> bytes:
    try:
        return msgpack.packb(m, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):  # an int msgpack cannot hold: a raw int
        return b"\x81\xa4type\xcf" + b"\xff" * 9


def random_bytes(rng: random.Random) -> bytes:
    head = bytes([rng.choice((0x81, 0x82, 0x85, 0x8F, 0xDE))]) if rng.random() < 0.5 else b""
    return head + rng.randbytes(rng.choice((0, 1, 2, 5, 17, 64, 300, 2000)))


def mutate_bytes(rng: random.Random, buf: bytes) -> bytes:
    """1-4 byte-level edits: flip a bit, set an interesting byte, insert, delete, truncate,
    duplicate a chunk."""
    b = bytearray(buf)
    for _ in range(rng.randint(1, 4)):
        op, i = rng.randrange(6), rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = rng.choice(INTERESTING)
        elif op == 2:
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del b[i:i + rng.randint(1, 16)]
        elif op == 4:
            del b[i:]
        else:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[j:j + rng.randint(1, 32)]
    return bytes(b)


def _paths(v: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    """Every key path into nested maps and arrays (arrays: their first 3 items)."""
    out: list[tuple] = []
    items = v.items() if isinstance(v, dict) else enumerate(v[:3]) if isinstance(v, list) else ()
    for k, x in items:
        out.append((*prefix, k))
        if depth < 4:
            out += _paths(x, (*prefix, k), depth + 1)
    return out


def mutate_fields(rng: random.Random, m: dict) -> dict:
    """1-3 edits of a wire map: drop a key, replace a value by a hostile one, nudge a number,
    add an unknown key."""
    m = copy.deepcopy(m)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(m)
        if not paths:
            break
        *parents, key = rng.choice(paths)
        parent = m
        for k in parents:
            parent = parent[k]
        op = rng.randrange(4)
        if op == 0 and isinstance(parent, dict):
            del parent[key]
        elif op == 2 and type(parent[key]) in (int, float):
            parent[key] = parent[key] + rng.choice((-1, 1, -(2**31), 2**32))
        elif op == 3 and isinstance(parent, dict):
            parent[f"zz{rng.randrange(100)}"] = rng.choice(HOSTILE)
        else:
            parent[key] = rng.choice(HOSTILE)
    return m


def foreign_valid(rng: random.Random) -> bytes:
    """A valid message the daemon must refuse: spectra or scan_end of a scan nobody opened
    (`unknown_scan`), or a type that does not belong on ingest (`unexpected_type`)."""
    m = copy.deepcopy(maps()[rng.choice(FOREIGN)])
    if m["type"] in ("spectra", "scan_end"):
        m["scan_id"] = f"ghost-{rng.randrange(10**6)}"
        if m["type"] == "spectra":
            m["seq"] = rng.randrange(1, 2**31)
    return pack(m)


def ingest_message(rng: random.Random, cls: str, too_large_bytes: int = 0) -> list[bytes]:
    """The frames of one hostile ingest message of class `cls`."""
    if cls == "random_bytes":
        return [random_bytes(rng)]
    if cls == "mutated_vector":
        return [mutate_bytes(rng, rng.choice(vectors()))]
    if cls == "mutated_field":
        return [pack(mutate_fields(rng, maps()[rng.choice(sorted(maps()))]))]
    if cls == "foreign_valid":
        return [foreign_valid(rng)]
    if cls == "multipart":
        return [rng.choice(vectors()) for _ in range(rng.randint(2, 3))]
    if cls == "too_large":
        return [rng.choice(vectors()) + bytes(too_large_bytes)]
    raise ValueError(f"unknown ingest class {cls!r}")


def hostile_path(rng: random.Random) -> str:
    """A models folder that leaves the models root (absolute, or climbing out)."""
    return rng.choice((
        "/", "/etc", "/tmp/models", "/proc/self", "..", "../elsewhere", "../../..",
        "a/../../b", "rgb/../../elsewhere", "../" * 40 + "etc", "/" + "x" * 2000,
        "ok/../../\u0000evil",
    ))


def request_message(rng: random.Random, cls: str, scan_id: str) -> bytes:
    """One hostile request of class `cls` (the real scan's id for pixel requests)."""
    if cls == "random_bytes":
        return random_bytes(rng)
    if cls == "mutated_request":
        return mutate_bytes(rng, rng.choice(request_vectors()))
    if cls == "hostile_reload":
        return pack({"type": "control", "version": VERSION, "command": "reload_models",
                     "models": hostile_path(rng)})
    if cls == "pixel_request":
        sid = scan_id if rng.random() < 0.7 else f"ghost-{rng.randrange(100)}"
        return pack({"type": "pixel_request", "version": VERSION, "scan_id": sid,
                     "x": rng.randrange(80), "y": rng.randrange(80)})
    if cls == "snapshot":
        topics = rng.sample(["rgb", "elements", "trust"], rng.randint(0, 3))
        return pack({"type": "snapshot_request", "version": VERSION, "topics": topics})
    if cls == "wrong_type":
        return pack(maps()[rng.choice(WRONG_ON_REQUESTS)])
    raise ValueError(f"unknown request class {cls!r}")
