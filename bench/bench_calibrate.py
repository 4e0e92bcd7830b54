"""`make calibrate` on a lab-sized map: its wall time and peak memory against the map's size.

    python bench/bench_calibrate.py [--data data/m6_corpus.h5] [--tiles 2] [--keep]

A lab calibrates on its own scans, and an M6 map of a panel is easily 1000 x 1000 pixels of
4096 channels (8 GB as uint16 counts). Our largest simulated scan (`make data`'s m6_corpus,
490 x 490) is tiled --tiles x --tiles into one dataset file, every other tile mirrored left to
right so that no two rows hold the same pixels; then `python -m export.calibrate` runs on it
with the M6 description (--quick) as a lab would run it, its table on the console.
Prints the map's pixels and the size of its counts as read, calibrate's wall time and its
peak resident memory (the child's ru_maxrss), and that peak as a multiple of the counts.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = ROOT / "training" / "instruments" / "m6_jetstream.toml"
ROWS = 64  # source rows copied at a time


def tile(src: Path, dst: Path, tiles: int) -> tuple[int, int, int]:
    """`src` (a dataset file) tiled `tiles` x `tiles` into `dst`; returns (h, w, channels).
    Only what calibrate reads is copied: the per-pixel arrays, not the ground truth."""
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        h, w, c = a["counts"].shape
        for key, value in a.attrs.items():
            b.attrs[key] = value
        scan = json.loads(a.attrs["scan"])
        scan["height"], scan["width"] = h * tiles, w * tiles
        b.attrs["scan"] = json.dumps(scan)
        for name, ds in a.items():
            if not isinstance(ds, h5py.Dataset) or ds.shape[:2] != (h, w):
                continue
            out = b.create_dataset(name, (h * tiles, w * tiles, *ds.shape[2:]), ds.dtype,
                                   chunks=ds.chunks, compression="gzip", compression_opts=1)
            for r in range(0, h, ROWS):
                block = ds[r:r + ROWS]
                row = np.concatenate([block[:, ::-1] if j % 2 else block
                                      for j in range(tiles)], axis=1)
                for i in range(tiles):  # odd rows of tiles start mirrored
                    out[i * h + r:i * h + r + len(block)] = row[:, ::-1] if i % 2 else row
    return h * tiles, w * tiles, c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "m6_corpus.h5")
    ap.add_argument("--tiles", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "artifacts" / "bench_calibrate")
    ap.add_argument("--keep", action="store_true", help="keep the tiled map and the bundle")
    a = ap.parse_args(argv)
    if not a.data.exists():
        print(f"bench_calibrate: {a.data} not found (make data)", file=sys.stderr)
        return 1
    a.work.mkdir(parents=True, exist_ok=True)
    scan = a.work / f"{a.data.stem}_x{a.tiles}.h5"
    t0 = time.perf_counter()
    h, w, c = tile(a.data, scan, a.tiles)
    with h5py.File(scan, "r") as f:
        counts_gb = h * w * c * f["counts"].dtype.itemsize / 1e9
    print(f"map: {h} x {w} x {c} ({h * w:,} spectra, {counts_gb:.1f} GB of counts as read), "
          f"tiled in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "export.calibrate", str(INSTRUMENT), str(scan),
                           "--quick", "--out", str(a.work / "models"),
                           "--work", str(a.work / "work")], cwd=ROOT)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9  # kB
    print(f"calibrate: exit {done.returncode}, {wall:.0f} s wall, peak resident memory "
          f"{peak_gb:.1f} GB = {peak_gb / counts_gb:.2f} x the counts as read")
    if not a.keep:
        shutil.rmtree(a.work)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
