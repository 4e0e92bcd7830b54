"""The edge recorder's engine: a dataset file written pixel by pixel, crash-safe (HDF5 SWMR).

The layout is `proto.dataset`'s (`create_layout`), so a recording is training data and
`proto.dataset.open_dataset` reads it, even while it is written or after its writer died.
`proto/DATASET.md` ("Live recordings") is the contract this engine keeps.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5s

from proto.dataset import STATUSES, create_layout, open_dataset
from proto.energy import EnergyGrid

_CACHE_BYTES = 64 * 2**20  # a full row of chunks stays in cache while a raster row is written
# the recorder's own datasets (proto/DATASET.md "Live recordings"): what a restarted daemon
# needs to know of the stream (last seq, pixels recorded) and which pixels were not inferred
GROUP = "recording"

log = logging.getLogger("edge.recording")


class DatasetWriter:
    """Incremental writer for the edge recorder: pixels in any order, crash-safe after flush().

    Every dataset is created at full size before SWMR mode starts; SWMR keeps the file
    consistent on disk at every flush, so a kill -9 loses at most the pixels since the last
    flush. Counts reach the disk before the `acquired` mask marks them (two flushes), so a
    pixel marked acquired always has its spectrum.
    """

    def __init__(self, path: Path, file: h5py.File, max_pending: int = 2048,
                 fresh: bool = False) -> None:
        """`fresh`: the file was just created, nothing acquired. Its maps are then zeros
        (np.zeros: pages the kernel gives on first write), not read back: reading a 4096 x
        4096 scan's fill values and scanning them for chunks cost ~0.2 s (0.45 s on a busy
        box) at scan_start, with ingest held."""
        self.path, self._f = path, file
        self._counts = file["counts"]
        h, w, c = self._counts.shape
        self.height, self.width, self.channels = h, w, c
        group = file[GROUP]
        if fresh:
            self.acquired = np.zeros((h, w), dtype=bool)
            self._live = np.zeros((h, w), dtype=file["live_time_s"].dtype)
            self._real = np.zeros((h, w), dtype=file["real_time_s"].dtype)
            self._marks = np.zeros((h, w), dtype=group["not_inferred"].dtype)
        else:
            self.acquired = file["acquired"][...].astype(bool)
            self._live = file["live_time_s"][...]
            self._real = file["real_time_s"][...]
            self._marks = group["not_inferred"][...]
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_n = 0
        self._max_pending = max_pending
        self._dirty_rows: set[int] = set()
        self.closed = False
        # Low-level handles, kept: the high-level h5py write costs ~40-90 us of Python per
        # call (name lookup, selection parsing), more than the data at a 1 kHz flush rate.
        self._counts_space = self._counts.id.get_space()
        self._direct = (_DirectChunks(self._counts, None if fresh else self.acquired)
                        if _DirectChunks.usable(self._counts) else None)
        self._last_seq_ds, self._pixels_ds = group["last_seq"], group["pixels_recorded"]
        # durable (as of the last flush) and written (in memory, not yet flushed) progress
        self.last_seq = self._seq_written = int(self._last_seq_ds[()])
        self.pixels_recorded = self._pixels_written = int(self._pixels_ds[()])
        self._rows = [
            (file[name].id, file[name].id.get_space(), mem)
            for name, mem in (("live_time_s", self._live), ("real_time_s", self._real),
                              (f"{GROUP}/not_inferred", self._marks),
                              ("acquired", self.acquired))
        ]

    @classmethod
    def create(
        cls, path: str | os.PathLike, height: int, width: int, grid: EnergyGrid,
        dtype: Any = "uint16", instrument: Mapping | None = None, scan: Mapping | None = None,
        *, compression: str | None = "gzip",
    ) -> DatasetWriter:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # "w-": a recording is never overwritten (the caller picks a name that is free)
        f = h5py.File(path, "w-", libver="latest", rdcc_nbytes=_CACHE_BYTES)
        try:
            create_layout(f, height, width, grid, dtype, instrument, scan, "recording",
                           compression)
            _create_group(f, last_seq=0, pixels=0)
            f.swmr_mode = True
            f.flush()
        except Exception:
            f.close()
            raise
        return cls(path, f, fresh=True)

    @classmethod
    def resume(cls, path: str | os.PathLike) -> DatasetWriter:
        """Reopen a recording to continue it; `.acquired` tells which pixels it already has.

        A file left by a killed writer keeps HDF5's "open for write" flag, which h5py cannot
        clear; its flushed content is then copied into a fresh file that replaces it.
        """
        path = Path(path)
        with open_dataset(path):
            pass  # validates, and reads a crashed recording through SWMR
        try:
            f = h5py.File(path, "r+", libver="latest", rdcc_nbytes=_CACHE_BYTES)
        except OSError:
            _rewrite_clean(path)
            f = h5py.File(path, "r+", libver="latest", rdcc_nbytes=_CACHE_BYTES)
        try:
            f.attrs["status"] = "recording"
            if GROUP not in f:  # written before these datasets: the stream position is unknown
                _create_group(f, last_seq=-1, pixels=int(np.count_nonzero(f["acquired"][...])))
            f.swmr_mode = True
        except Exception:
            f.close()
            raise
        return cls(path, f)

    def write_pixels(
        self, x: np.ndarray, y: np.ndarray, counts: np.ndarray,
        live: np.ndarray, real: np.ndarray, marks: np.ndarray | None = None,
        seq: int | None = None,
    ) -> None:
        """Pixels in any order; `marks` (N,) uint8: why each was not inferred (0: it was);
        `seq`: the last spectra.seq these pixels complete, kept in the file at the flush."""
        x = np.asarray(x, dtype=np.intp).reshape(-1)
        y = np.asarray(y, dtype=np.intp).reshape(-1)
        counts = np.asarray(counts)
        n = x.size
        if counts.shape != (n, self.channels) or y.size != n:
            raise ValueError(f"need (N,) x, y and (N, {self.channels}) counts, got "
                             f"{x.shape}, {y.shape}, {counts.shape}")
        if n and (x.min() < 0 or y.min() < 0 or x.max() >= self.width or y.max() >= self.height):
            raise ValueError("pixel coordinates out of range")
        self._live[y, x] = live
        self._real[y, x] = real
        self.acquired[y, x] = True
        self._marks[y, x] = 0 if marks is None else marks
        self._pixels_written += n
        if seq is not None:
            self._seq_written = max(self._seq_written, int(seq))
        self._pending.append((y, x, counts.astype(self._counts.dtype, copy=False)))
        self._pending_n += n
        if self._pending_n >= self._max_pending:
            self._drain()

    @property
    def pixels_written(self) -> int:
        """Pixels handed to write_pixels so far (repeats included); durable: pixels_recorded."""
        return self._pixels_written

    def _drain(self) -> None:
        """Write pending spectra into the cube, one slice per run of adjacent pixels in a row."""
        if not self._pending:
            return
        if len(self._pending) == 1:
            y, x, counts = self._pending[0]
        else:
            y = np.concatenate([p[0] for p in self._pending])
            x = np.concatenate([p[1] for p in self._pending])
            counts = np.concatenate([p[2] for p in self._pending])
        self._pending, self._pending_n = [], 0
        if y.size > 1:
            order = np.lexsort((x, y))
            y, x, counts = y[order], x[order], counts[order]
            # A run breaks where the row changes or x does not step by exactly one.
            breaks = np.flatnonzero((np.diff(y) != 0) | (np.diff(x) != 1)) + 1
            starts, stops = np.r_[0, breaks].tolist(), np.r_[breaks, y.size].tolist()
        else:
            starts, stops = [0], [1]
        counts = np.ascontiguousarray(counts)
        for start, stop in zip(starts, stops, strict=True):
            row = int(y[start])
            self._write_run(row, int(x[start]), counts[start:stop])
            self._dirty_rows.add(row)

    def _write_run(self, row: int, x0: int, counts: np.ndarray) -> None:
        """counts (n, C), C-contiguous, file dtype -> pixels (row, x0 .. x0 + n)."""
        if self._direct is not None:
            self._direct.write_run(row, x0, counts, self.acquired)
            return
        n = counts.shape[0]
        space = self._counts_space
        space.select_hyperslab((row, x0, 0), (1, n, self.channels))
        self._counts.id.write(h5s.create_simple((n, self.channels)), space, counts)

    def flush(self) -> None:
        """Make every pixel written so far durable (call at least once a second)."""
        self._drain()
        if not self._dirty_rows:
            return
        if self._direct is not None:
            self._direct.write_dirty(self.acquired)
        self._f.flush()  # spectra first ...
        r0, r1 = min(self._dirty_rows), max(self._dirty_rows) + 1
        mem = h5s.create_simple((r1 - r0, self.width))
        for dataset, space, values in self._rows:
            space.select_hyperslab((r0, 0), (r1 - r0, self.width))
            dataset.write(mem, space, np.ascontiguousarray(values[r0:r1]))
        self._last_seq_ds[()] = self._seq_written
        self._pixels_ds[()] = self._pixels_written
        self._f.flush()  # ... then the mask that says they exist
        self._dirty_rows.clear()
        self.last_seq, self.pixels_recorded = self._seq_written, self._pixels_written

    def read_pixel(self, x: int, y: int) -> tuple[np.ndarray, float, float] | None:
        """One pixel's counts, live and real time read back from the file (a viewer's
        click, SPEC.md 4.10); None if not acquired. Flushes first: what is read is on disk."""
        if not self.acquired[y, x]:
            return None
        self.flush()
        return self._counts[y, x], float(self._live[y, x]), float(self._real[y, x])

    def close(self, status: str = "success", end: Mapping | None = None) -> None:
        """Flush, close, then set `status` and the `end` summary (JSON) on the closed file."""
        if self.closed:
            return
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.flush()
        self.closed = True
        self._f.close()
        _set_end(self.path, status, end)

    def abandon(self, status: str = "fail", end: Mapping | None = None) -> bool:
        """Close after a write failed, without flushing: pixels not yet durable stay unmarked
        (the caller counts them refused). Best effort (the disk may be full): True when
        `status` could be set, else the file keeps `recording` (its sidecar is the caller's)."""
        if self.closed:
            return False
        self.closed = True
        try:
            self._f.close()
        except Exception as e:  # HDF5 may fail to write its metadata: the file is what it is
            log.error("%s: closing after a write failure: %s", self.path, e)
        try:
            _set_end(self.path, status, end)
            return True
        except Exception as e:
            log.error("%s: could not mark the recording %r: %s", self.path, status, e)
            return False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close("success" if exc_type is None else "fail")


class _DirectChunks:
    """Counts written as whole chunks (H5Dwrite_chunk), past HDF5's chunk cache.

    For an unfiltered (1, cw, C) chunk layout: a run of pixels that covers a chunk is
    written straight from the caller's array; a chunk only partly covered is kept here
    (read back from the file if it holds earlier pixels) and written whole by
    `write_dirty`, before the flush that makes it durable. A raster batch then costs one
    pwrite per chunk instead of a fill, a copy into the cache and the cache's write-out.
    """

    def __init__(self, dataset: h5py.Dataset, acquired: np.ndarray | None,
                 max_partial: int = 64) -> None:
        self._id = dataset.id
        _, self.width, self.channels = dataset.shape
        self.cw = dataset.chunks[1]
        self.dtype = dataset.dtype
        self.max_partial = max_partial
        self._partial: dict[tuple[int, int], np.ndarray] = {}  # (row, x0) -> (cw, C)
        self._dirty: set[tuple[int, int]] = set()
        # chunks holding acquired pixels, to be read back before a partial write; a chunk with
        # none holds nothing that counts (unacquired pixels read 0). Asking HDF5 instead
        # costs ~0.4 ms a chunk, and listing them is quadratic in their number. None: a new
        # file, no chunk stored yet.
        self._stored: set[tuple[int, int]] = set()
        if acquired is None:
            return
        h = acquired.shape[0]
        padded = np.zeros((h, -(-self.width // self.cw) * self.cw), dtype=bool)
        padded[:, :self.width] = acquired
        rows, cols = np.nonzero(padded.reshape(h, -1, self.cw).any(axis=2))
        self._stored = set(zip(rows.tolist(), (cols * self.cw).tolist(), strict=True))

    @staticmethod
    def usable(dataset: h5py.Dataset) -> bool:
        chunks = dataset.chunks
        return (
            chunks is not None and chunks[0] == 1 and chunks[2] == dataset.shape[2]
            and dataset.id.get_create_plist().get_nfilters() == 0
            and dataset.dtype.byteorder in ("=", "<", "|") and np.little_endian
        )

    def write_run(self, row: int, x0: int, counts: np.ndarray, acquired: np.ndarray) -> None:
        x1 = x0 + len(counts)
        cw = self.cw
        for c0 in range(x0 - x0 % cw, x1, cw):
            a, b = max(x0, c0), min(x1, c0 + cw)
            key = (row, c0)
            if b - a == cw:  # the whole chunk: no need to know what it held
                self._partial.pop(key, None)
                self._dirty.discard(key)
                self._put(key, counts[a - x0:b - x0])
                continue
            chunk = self._partial.get(key)
            if chunk is None:
                chunk = self._partial[key] = self._read(row, c0)
            chunk[a - c0:b - c0] = counts[a - x0:b - x0]
            self._dirty.add(key)
        if len(self._partial) > self.max_partial:
            self.write_dirty(acquired)

    def write_dirty(self, acquired: np.ndarray) -> None:
        """Write every chunk changed since the last call; keep only unfinished ones."""
        for key in self._dirty:
            self._put(key, self._partial[key])
        self._dirty.clear()
        for (row, c0) in list(self._partial):
            if acquired[row, c0:c0 + self.cw].all():  # complete: not written again
                del self._partial[(row, c0)]
        while len(self._partial) > self.max_partial:  # oldest first; all clean by now
            del self._partial[next(iter(self._partial))]

    def _put(self, key: tuple[int, int], chunk: np.ndarray) -> None:
        if key not in self._stored and _all_zero(chunk):
            return  # never written, it reads as zeros (the fill value) and costs no disk
        self._id.write_direct_chunk((*key, 0), chunk)
        self._stored.add(key)

    def _read(self, row: int, c0: int) -> np.ndarray:
        """A chunk's current content (zeros, the fill value, if never written)."""
        if (row, c0) not in self._stored:
            return np.zeros((self.cw, self.channels), dtype=self.dtype)
        _, raw = self._id.read_direct_chunk((row, c0, 0))
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.cw, self.channels).copy()


def _create_group(f: h5py.File, last_seq: int, pixels: int) -> None:
    h, w = f["acquired"].shape
    g = f.create_group(GROUP)
    g.create_dataset("not_inferred", (h, w), dtype="uint8", chunks=(1, w), fillvalue=0)
    g.create_dataset("last_seq", data=np.int64(last_seq))
    g.create_dataset("pixels_recorded", data=np.int64(pixels))


def _set_end(path: Path, status: str, end: Mapping | None) -> None:
    """Attributes cannot change under SWMR: the final status is set after a clean close. A
    file whose open-for-write flag survived (its close failed) is first rewritten clean."""
    try:
        f = h5py.File(path, "r+", libver="latest")
    except OSError:
        _rewrite_clean(path)
        f = h5py.File(path, "r+", libver="latest")
    with f:
        f.attrs["status"] = status
        if end is not None:
            f.attrs["end"] = json.dumps(dict(end), sort_keys=True)


def _all_zero(chunk: np.ndarray) -> bool:
    """True when every count is 0. The first spectrum alone (~1 us) settles it for real data;
    the whole chunk (~15 us for 128 KiB) is read only when that spectrum is empty."""
    return not chunk[0].any() and not chunk.any()


def _rewrite_clean(path: Path) -> None:
    """Copy a crashed SWMR recording into a fresh file (clears HDF5's open-for-write flag)."""
    tmp = path.with_name(path.name + ".resume")
    with h5py.File(path, "r", libver="latest", swmr=True) as src, \
            h5py.File(tmp, "w", libver="latest") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src:
            src.copy(src[name], dst, name=name)
    os.replace(tmp, path)
