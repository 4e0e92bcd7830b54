"""`make bench` (archive part): PyMca labelling spectra/s on Dask, 1 vs 2 workers on the same
data, the cost of each part, and the scaling to expect on N cores.

    python bench/bench_archive.py [--datasets 2] [--height 16] [--width 64] [--block 1024]
                                  [--light]

Simulated M6 scans (4096 channels, 50 ms dwell) labelled by `python -m archive labels`'s
library function on a LocalCluster of 1, then 2 worker processes (one thread each), with
the shipped m6.cfg (--light: the cut-down test config). Measured in this process, one core,
in CPU seconds (so other work on a shared machine does not distort them):
PyMca's set-up per call (configuring the fit model: the same for 1 or 16384 spectra), the
fast-fit rate once set up, the sum-spectrum refinement per dataset, and reading a block;
on the cluster: the scheduler's round trip per task. Then per block
    T_block = setup + B / fit_rate + read(B) + overhead,
and N workers over many blocks give N * B / T_block spectra/s, until the storage's read
rate (bytes per spectrum x spectra/s) is the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per fit, as on the workers
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive.cluster import connect  # noqa: E402
from archive.labels import label_datasets  # noqa: E402
from proto.dataset import open_dataset  # noqa: E402
from tests import archive_support  # noqa: E402


def _spectra(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open_dataset(path) as ds:
        counts, live = ds.counts[...], ds.live_time_s
    return counts.reshape(-1, counts.shape[2]), live.reshape(-1)


def _noop(i: int) -> int:
    return i


FIT_REPEATS = 8


def measure_parts(paths: list[str], cfg_path: Path) -> dict[str, float]:
    """Per-core costs in CPU seconds of this process (one thread): robust to other work on a
    shared machine, unlike wall time."""
    from training.labels import fit_cube, load_config, refine_config, sum_spectrum

    clock = time.process_time
    with open_dataset(paths[0]) as ds:
        grid = ds.grid
        t0 = clock()
        counts = ds.counts[...]
        read_s = clock() - t0
    flat = np.concatenate([_spectra(p)[0] for p in paths])
    live = np.concatenate([_spectra(p)[1] for p in paths])
    cfg = load_config(cfg_path, grid)
    setups = []
    for _ in range(2):  # PyMca configures its model on every call: the same for 1 spectrum
        t0 = clock()
        fit_cube(flat[:1], live[:1], cfg)
        setups.append(clock() - t0)
    setup = min(setups)
    # the scans' spectra several times over: their fit must stand well above the set-up's
    # own spread (~0.2 s of ~5.5 s here), which one pass of 2048 spectra did not
    flat, live = np.tile(flat, (FIT_REPEATS, 1)), np.tile(live, FIT_REPEATS)
    t0 = clock()
    fit_cube(flat, live, cfg)
    whole = clock() - t0
    n = len(flat)
    total, _, live_s = sum_spectrum(paths[0])
    t0 = clock()
    refine_config(load_config(cfg_path, grid), total, live_s)
    refine = clock() - t0
    pixels = counts.shape[0] * counts.shape[1]
    if whole - setup < 0.05 * whole:
        raise SystemExit(f"fit of {n} spectra ({whole:.2f} s) not measurably longer than the "
                         f"set-up ({setup:.2f} s): use more or larger scans")
    return {"setup_s": setup, "fit_rate": n / (whole - setup), "refine_s": refine,
            "read_per_spectrum_s": read_s / pixels, "bytes_per_spectrum": counts.itemsize
            * counts.shape[2], "pixels": pixels}


def run(paths: list[str], cfg: Path, workers: int, block: int) -> tuple[float, float]:
    """(spectra/s of a labelling run, scheduler round trip per task in s)."""
    with connect(None, workers, dashboard=None, quiet=True) as client:
        futures = client.map(_noop, range(200), pure=False)  # warm the workers up
        client.gather(futures)
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(400), pure=False))
        overhead = (time.perf_counter() - t0) / 400
        t0 = time.perf_counter()
        s = label_datasets(client, paths, cfg.read_text(), cfg.name, block_pixels=block,
                           force=True, progress=False)
        seconds = time.perf_counter() - t0
    if s.failed:
        raise SystemExit(f"labelling failed: {[str(f) for f in s.failed]}")
    return s.spectra / seconds, overhead


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=2, help="scans (default 2)")
    parser.add_argument("--height", type=int, default=16, help="rows per scan (default 16)")
    parser.add_argument("--width", type=int, default=64, help="pixels per row (default 64)")
    parser.add_argument("--block", type=int, default=1024,
                        help="pixels per task (default 1024: one block per default scan)")
    parser.add_argument("--light", action="store_true",
                        help="the cut-down test config instead of the shipped m6.cfg")
    args = parser.parse_args(argv)
    from training.labels import CONFIG_DIR

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"[bench archive] simulating {args.datasets} scans of {args.height} x "
              f"{args.width} (M6, 4096 channels) ...", flush=True)
        paths = [str(p) for p in archive_support.make_scans(
            folder / "data", [args.height] * args.datasets, args.width)]
        cfg = (archive_support.light_config(folder / "light.cfg") if args.light
               else CONFIG_DIR / "m6.cfg")
        parts = measure_parts(paths, cfg)
        rates = {}
        for n in (1, 2):
            rates[n], overhead = run(paths, cfg, n, args.block)
            print(f"[bench archive] {n} worker{'s' * (n > 1)}: {rates[n]:8.1f} spectra/s "
                  f"(labels of {args.datasets} x {args.height * args.width} spectra, "
                  f"refinement included; scheduler round trip {overhead * 1e3:.2f} ms/task)",
                  flush=True)
    report(parts, rates, overhead, args)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[bench archive] load average (1, 5, 15 min) at the end: {load} on "
          f"{os.cpu_count()} cores (other work on the machine slows both runs)")
    return 0


def report(parts: dict, rates: dict, overhead: float, args: argparse.Namespace) -> None:
    b = args.block
    blocks_per_scan = -(-args.height * args.width // b)
    t_block = parts["setup_s"] + b / parts["fit_rate"] + b * parts["read_per_spectrum_s"] \
        + overhead
    print(f"[bench archive] cfg {'light' if args.light else 'm6.cfg'}, on {os.cpu_count()} "
          f"cores; per core (CPU s): PyMca set-up {parts['setup_s']:.2f} s per call, fast fit "
          f"{parts['fit_rate']:.0f} spectra/s once set up, refinement {parts['refine_s']:.2f} "
          f"s per scan, read {1 / parts['read_per_spectrum_s']:.0f} spectra/s")
    per_scan = parts["refine_s"] + blocks_per_scan * t_block
    spectra = args.datasets * args.height * args.width
    idle = {n: spectra / (-(-args.datasets // n) * per_scan) for n in (1, 2)}  # whole scans
    print(f"[bench archive] expected on an idle machine from the CPU costs: 1 worker "
          f"{idle[1]:.1f}, 2 workers {idle[2]:.1f} spectra/s (x{idle[2] / idle[1]:.2f}); "
          f"measured wall-clock x{rates[2] / rates[1]:.2f}")
    print(f"[bench archive] 2 vs 1 worker: x{rates[2] / rates[1]:.2f}; a {b}-pixel block "
          f"costs {parts['setup_s']:.2f} + {b / parts['fit_rate']:.2f} (fit) + "
          f"{b * parts['read_per_spectrum_s']:.3f} (read) + {overhead:.4f} (scheduler) = "
          f"{t_block:.2f} s -> {b / t_block:.0f} spectra/s per worker "
          f"({blocks_per_scan} blocks + 1 refinement per scan)")
    for big in (16384,):
        tb = parts["setup_s"] + big / parts["fit_rate"] + big * parts["read_per_spectrum_s"] \
            + overhead
        print(f"[bench archive] at the default {big}-pixel blocks: {tb:.1f} s a block, "
              f"{big / tb:.0f} spectra/s per worker (set-up {parts['setup_s'] / tb:.0%} of it)")
        per_worker = big / tb
        io_cap = 200e6 / parts["bytes_per_spectrum"]  # a 200 MB/s shared store, uncompressed
        print(f"[bench archive] I/O: assuming a 200 MB/s shared store, "
              f"{parts['bytes_per_spectrum'] / 1024:.0f} KiB a spectrum -> at most "
              f"{io_cap:.0f} spectra/s for the whole cluster (this disk: "
              f"{1 / parts['read_per_spectrum_s']:.0f} spectra/s per reader, gzip included)")
        for n in (2, 8, 32, 128):
            expect = min(n * per_worker, io_cap)
            hours = 10e6 / expect / 3600
            print(f"[bench archive]   N = {n:3d} workers: {expect:9.0f} spectra/s, a "
                  f"10-million-spectrum archive in {hours:5.2f} h"
                  + ("  (read-bound at 200 MB/s)" if expect == io_cap else ""))
    print("[bench archive] scaling is linear while blocks outnumber workers (each scan's sum "
          "and refinement come first, so a few big scans start slower than many small ones) "
          "and while the storage keeps up; the scheduler's ms per task is negligible next to "
          "seconds per block.")


if __name__ == "__main__":
    sys.exit(main())
