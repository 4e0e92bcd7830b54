"""Several detector elements in one dataset file: the optional `detectors/` group
(proto/DATASET.md). `counts` stays what every tool reads (one spectrum per pixel, e.g. the sum
of the elements); `detectors/` keeps each element's own counts and times beside it, so the
elements remain separable (a repeat measurement, a per-element model, another sum).

h5py + numpy + json only, like `proto.dataset`, which calls `check` when it opens a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

GROUP = "detectors"
COUNT_DTYPES = (np.dtype("uint16"), np.dtype("uint32"))
_CHUNK_WIDTH = 16


@dataclass
class Detectors:
    """D elements: `counts` (D, H, W, C) is read on demand (slice it); times (D, H, W)."""

    names: list[str]
    counts: h5py.Dataset
    live_time_s: np.ndarray
    real_time_s: np.ndarray
    combined: str  # what the root `counts` holds: "sum" or one element's name


def write(path: str | os.PathLike, names: Sequence[str], counts: np.ndarray,
          live_time_s: np.ndarray, real_time_s: np.ndarray, *, combined: str = "sum",
          compression: str | None = "gzip") -> None:
    """Add the `detectors/` group to a dataset file (before it is published: convert writes
    a temporary file, adds this group, verifies, then renames)."""
    counts = np.asarray(counts)
    d = len(names)
    with h5py.File(path, "r+") as f:
        h, w, c = f["counts"].shape
        if counts.shape != (d, h, w, c) or counts.dtype not in COUNT_DTYPES:
            raise ValueError(f"detector counts must be uint16/uint32 {(d, h, w, c)}, "
                             f"got {counts.dtype} {counts.shape}")
        if GROUP in f:
            del f[GROUP]
        group = f.create_group(GROUP)
        group.attrs["names"] = json.dumps(list(names))
        group.attrs["combined"] = combined
        opts = {"compression": "gzip", "compression_opts": 1, "shuffle": True} \
            if compression == "gzip" else {}
        ds = group.create_dataset("counts", data=counts, chunks=(1, 1, min(w, _CHUNK_WIDTH), c),
                                  **opts)
        ds.attrs["units"], ds.attrs["axes"] = "counts", "detector,y,x,channel"
        for name, times in (("live_time_s", live_time_s), ("real_time_s", real_time_s)):
            times = np.asarray(times, dtype=np.float32)
            if times.shape != (d, h, w):
                raise ValueError(f"detector {name} must be {(d, h, w)}, got {times.shape}")
            group.create_dataset(name, data=times).attrs["units"] = "s"


def check(f: h5py.File, shape: tuple[int, int, int]) -> str | None:
    """The problem with a file's `detectors/` group, or None (also when there is none)."""
    group = f.get(GROUP)
    if group is None:
        return None
    try:
        d = len(json.loads(group.attrs["names"]))
        str(group.attrs["combined"])
    except (KeyError, ValueError, TypeError):
        return "'detectors' lacks JSON 'names' or 'combined' attributes"
    h, w, c = shape
    for name, want in (("counts", (d, h, w, c)), ("live_time_s", (d, h, w)),
                       ("real_time_s", (d, h, w))):
        node = group.get(name)
        if not isinstance(node, h5py.Dataset) or node.shape != want:
            return f"'detectors/{name}' missing or not {want}"
    if group["counts"].dtype not in COUNT_DTYPES:
        return f"'detectors/counts' dtype must be uint16 or uint32, got {group['counts'].dtype}"
    return None


def read(f: h5py.File) -> Detectors | None:
    group = f.get(GROUP)
    if group is None:
        return None
    return Detectors(json.loads(group.attrs["names"]), group["counts"],
                     group["live_time_s"][...], group["real_time_s"][...],
                     str(group.attrs["combined"]))
