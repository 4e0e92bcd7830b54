"""Convert any supported file (Bruker .spx/.bcf, PyMca .mca/.spe, plain HDF5) to a dataset file.

    python -m training.convert INPUT OUTPUT.h5 [--offset KEV] [--gain KEV] [--live-time S]

Calibration and live-time overrides are for files that lack them (e.g. a bare .mca column);
the edge only ever replays dataset files, so this is the one door real data comes in by.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from proto.dataset import DatasetError, open_dataset, write_dataset
from training.readers import ReaderError, read


def convert(
    source: str | Path, output: str | Path, *, offset: float | None = None,
    gain: float | None = None, live_time_s: float | None = None,
) -> Path:
    scan = read(source).with_calibration(offset, gain)
    if scan.grid is None:
        raise ReaderError(source, "file has no energy calibration: pass --offset and --gain (keV)")
    if live_time_s is not None:
        hw = scan.counts.shape[:2]
        scan = replace(scan, live_time_s=np.full(hw, live_time_s, np.float32),
                       real_time_s=np.maximum(scan.real_time_s, live_time_s))
        scan.scan["live_time_source"] = "command line"
    path = write_dataset(output, scan.counts, scan.grid, scan.live_time_s, scan.real_time_s,
                         instrument=scan.instrument, scan={**scan.scan, "converted_from":
                                                           Path(source).name})
    with open_dataset(path, verify=True):
        pass
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--offset", type=float, help="energy of channel 0 centre, keV")
    parser.add_argument("--gain", type=float, help="keV per channel")
    parser.add_argument("--live-time", type=float, help="live time per pixel, s")
    args = parser.parse_args(argv)
    try:
        path = convert(args.input, args.output, offset=args.offset, gain=args.gain,
                       live_time_s=args.live_time)
    except (DatasetError, ValueError) as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 2
    with open_dataset(path) as ds:
        h, w, c = ds.shape
        print(f"{path}: {h} x {w} pixels x {c} channels, {ds.grid}, "
              f"live {float(ds.live_time_s.mean()):.4g} s/pixel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
