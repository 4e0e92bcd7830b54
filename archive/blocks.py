"""Pixel blocks that follow a dataset's HDF5 chunks, and the digests that let a rerun skip
what is done and verified.

A block is a band of whole rows: `counts` is chunked `(1, min(W, 16), C)` (DATASET.md), so
a band of rows is a set of whole chunks and a task reads only its own. Bands are as tall as
`pixels // W` rows (at least one, rounded to the chunk height), the same bands as
`training.labels.fit_labels`: PyMca's fast fit refits negative areas per call, so the
partition is part of the result, and equal bands give equal labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from proto.dataset import Dataset, DatasetError


@dataclass(frozen=True)
class Block:
    index: int
    y0: int
    y1: int  # exclusive
    width: int

    @property
    def rows(self) -> slice:
        return slice(self.y0, self.y1)

    @property
    def pixels(self) -> int:
        return (self.y1 - self.y0) * self.width

    def name(self) -> str:
        last = self.y1 - 1
        return f"block {self.index} (row {self.y0})" if last == self.y0 else \
            f"block {self.index} (rows {self.y0}-{last})"


def plan(height: int, width: int, pixels: int, chunk_rows: int = 1) -> list[Block]:
    """Row bands of about `pixels` pixels, whole chunks each (`chunk_rows`: the chunks' height)."""
    rows = max(1, pixels // max(1, width))
    rows = max(chunk_rows, rows - rows % chunk_rows)
    return [Block(i, y0, min(height, y0 + rows), width)
            for i, y0 in enumerate(range(0, height, rows))]


def plan_dataset(ds: Dataset, pixels: int) -> list[Block]:
    """The blocks of a closed dataset; one still open is refused (its pixels may yet change)."""
    if ds.status == "recording":
        raise DatasetError(ds.path, "still recording, or its writer died: let the daemon "
                                    "resume and close it first")
    h, w, _ = ds.shape
    chunks = ds.counts.chunks
    return plan(h, w, pixels, chunks[0] if chunks else 1)


def inputs_digest(ds: Dataset) -> str:
    """sha256 of what a result depends on besides the counts' values: calibration, shape,
    dtype, chunking, the status, live times and the acquired mask (a file rewritten with new
    pixels changes these). Cheap: no pass over the counts."""
    h = hashlib.sha256()
    counts = ds.counts
    head = {"shape": counts.shape, "dtype": str(counts.dtype), "chunks": counts.chunks,
            "grid": ds.grid.to_dict(), "status": ds.status}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(ds.live_time_s).tobytes())
    h.update(np.ascontiguousarray(ds.acquired).tobytes())
    return h.hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of named arrays as stored (names, dtypes, shapes and bytes), NaN-safe."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def text_digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
