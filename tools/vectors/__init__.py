"""Golden vectors of wire protocol v1 (proto/SPEC.md section 8): the generator.

`python -m tools.vectors [--out DIR] [--check]` rewrites `valid/` and `invalid/` of
`proto/vectors/` (deterministic: same bytes every run). Each valid ``NAME.msgpack``
has ``NAME.json``: ``{"type", "encode", "fields"}`` where arrays are ``{"dtype",
"shape", "values", "sha256"}`` (values flat, C order; sha256 of the raw little-endian
bytes) and ``encode`` is the `proto.wire.encode` options that reproduce the file, or
null for a hand-packed vector the reference encoder would not write (future minor
version, omitted optional keys). Each invalid ``NAME.msgpack`` has ``NAME.json``:
``{"reason", "path", "why"}``.
"""

from __future__ import annotations

from pathlib import Path

import proto
from tools.vectors.describe import build, describe
from tools.vectors.invalid import invalid_cases
from tools.vectors.valid import hand_packed_valid, valid_cases
from tools.vectors.write import differences, files, write

HERE = Path(proto.__file__).resolve().parent / "vectors"  # where the committed vectors live

__all__ = [
    "HERE",
    "build",
    "describe",
    "differences",
    "files",
    "hand_packed_valid",
    "invalid_cases",
    "valid_cases",
    "write",
]
