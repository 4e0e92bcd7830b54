"""Convert a real file (or a folder of per-pixel .mca files) to a dataset file (proto/DATASET.md).

    python -m training.convert INPUT OUTPUT.h5 [--instrument FILE.toml] [--detector N|NAME|sum]
        [--grid WxH] [--dataset PATH --axes ORDER --live-time-dataset P --real-time-dataset P]
        [--offset KEV --gain KEV] [--live-time S]

Formats: Bruker .spx/.bcf, Bruker RPL/RAW (.rpl), Amptek/PyMca .mca (a file or a folder of
one-pixel files, `--grid`), IXRF .GeoPIXE, APS MAPS HDF5, plain HDF5 (`--dataset`, `--axes`,
time dataset names). Several detector elements: by default `counts` holds their sum and
`detectors/` each one; `--detector sum` keeps only the sum, `--detector N` (or its name) only
that element. `--instrument` stores the lab's description (proto/INSTRUMENT.md) and its
fingerprint, and supplies the calibration a file lacks. What the file does not say and no
option supplies is refused; every approximation is listed in the dataset's `scan.warnings`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from proto import detectors
from proto.dataset import DatasetError, open_dataset, write_dataset
from proto.instrument import InstrumentDescription
from proto.instrument import load as load_description
from training.readers import ReaderError, Scan, read


def _calibrate(scan: Scan, desc: InstrumentDescription | None, source: Path) -> Scan:
    """The file's calibration; else the description's, when it has the file's channel count."""
    if desc is None:
        if scan.grid is None:
            raise ReaderError(source, "file has no energy calibration: pass --offset and "
                                      "--gain (keV) or --instrument with a [calibration]")
        return scan
    nominal = desc.calibration.grid
    if scan.grid is None:
        if nominal.channels != scan.counts.shape[-1]:
            raise ReaderError(source, f"file has no energy calibration and the description's "
                                      f"is for {nominal.channels} channels, not "
                                      f"{scan.counts.shape[-1]}")
        scan.warnings.append(f"calibration from the instrument description ({nominal})")
        scan.scan["calibration_source"] = "instrument description"
        return replace(scan, grid=nominal)
    grid = scan.grid
    if (abs(grid.gain - nominal.gain) > 0.01 * nominal.gain
            or abs(grid.offset - nominal.offset) > 0.05 or grid.channels != nominal.channels):
        scan.warnings.append(f"file calibration {grid} differs from the description's "
                             f"{nominal}; the file's is used")
    return scan


def _times(scan: Scan, live_time_s: float | None, source: Path) -> Scan:
    if live_time_s is not None:
        shape = scan.counts.shape[:-1]
        real = np.full(shape, live_time_s) if scan.real_time_s is None else \
            np.maximum(scan.real_time_s, live_time_s)
        scan.scan["live_time_source"] = "command line"
        return replace(scan, live_time_s=np.full(shape, live_time_s, np.float32),
                       real_time_s=real)
    if scan.live_time_s is None:
        raise ReaderError(source, "file has no live time: pass --live-time S (per pixel)")
    if scan.real_time_s is None:
        scan.warnings.append("real time not in file: set equal to the live time")
        return replace(scan, real_time_s=scan.live_time_s)
    return scan


def convert(
    source: str | Path, output: str | Path, *, instrument: str | Path | None = None,
    detector: str | int | None = None, offset: float | None = None, gain: float | None = None,
    live_time_s: float | None = None, **reader_options: Any,
) -> Path:
    """Read `source` (reader options: grid, dataset, axes, live_time, real_time), apply the
    overrides, write `output`; returns its path. Raises ReaderError / InstrumentError."""
    source, output = Path(source), Path(output)
    desc = None if instrument is None else load_description(instrument)
    options = {k: v for k, v in reader_options.items() if v is not None}
    scan = read(source, **options).with_calibration(offset, gain)
    scan = _times(_calibrate(scan, desc, source), live_time_s, source)
    names = scan.detector_names
    if not names and detector not in (None, "sum", "all", 0, "0"):
        raise ReaderError(source, f"--detector {detector}: the file has one detector")
    if desc is not None and names and desc.detector.count != len(names):
        scan.warnings.append(f"the file has {len(names)} detectors, the description "
                             f"{desc.detector.count}")
    keep = names and detector in (None, "all")
    combined = scan.select("sum" if detector in (None, "all") else detector)
    instrument_record = dict(combined.instrument)
    if desc is not None:
        stream = desc.for_stream(summed=not names or detector in (None, "all", "sum"))
        instrument_record.update(description=stream.to_dict(), fingerprint=stream.fingerprint())
    scan_record = {**combined.scan, "converted_from": source.name,
                   "warnings": combined.warnings}
    tmp = output.with_name(output.name + ".convert")
    try:
        write_dataset(tmp, combined.counts, combined.grid, combined.live_time_s,
                      combined.real_time_s, instrument=instrument_record, scan=scan_record)
        if keep:
            detectors.write(tmp, names, scan.counts, scan.live_time_s, scan.real_time_s)
        with open_dataset(tmp, verify=True):
            pass
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="file, or folder of one-pixel .mca files")
    parser.add_argument("output", type=Path)
    parser.add_argument("--instrument", type=Path, help="instrument description (TOML)")
    parser.add_argument("--detector", help="several detectors: N or a name (one element), "
                                           "'sum' (only their sum); default: sum + each")
    parser.add_argument("--grid", help="folder of .mca files: WxH (or W) pixels, raster order")
    parser.add_argument("--dataset", help="HDF5: path of the counts dataset")
    parser.add_argument("--axes", help="HDF5: axis order of the counts, letters y x c d n "
                                       "(e.g. yxc, cyx, dyxc, nc)")
    parser.add_argument("--live-time-dataset", help="HDF5: dataset/attribute of live times (s)")
    parser.add_argument("--real-time-dataset", help="HDF5: dataset/attribute of real times (s)")
    parser.add_argument("--offset", type=float, help="energy of channel 0 centre, keV")
    parser.add_argument("--gain", type=float, help="keV per channel")
    parser.add_argument("--live-time", type=float, help="live time per pixel, s")
    args = parser.parse_args(argv)
    try:
        path = convert(args.input, args.output, instrument=args.instrument,
                       detector=args.detector, offset=args.offset, gain=args.gain,
                       live_time_s=args.live_time, grid=args.grid, dataset=args.dataset,
                       axes=args.axes, live_time=args.live_time_dataset,
                       real_time=args.real_time_dataset)
    except (DatasetError, ValueError) as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 2
    with open_dataset(path) as ds:
        h, w, c = ds.shape
        live = ds.live_time_s
        dets = ds.detectors
        print(f"{path}: {h} x {w} pixels x {c} channels, {ds.grid}, live time "
              f"{float(live.min()):.4g}-{float(live.max()):.4g} s/pixel (mean "
              f"{float(live.mean()):.4g})"
              + (f", detectors {dets.names} ({dets.combined} in counts)" if dets else ""))
        if ds.instrument.get("fingerprint"):
            print(f"instrument {ds.instrument['description']['name']}, fingerprint "
                  f"{ds.instrument['fingerprint'][:12]}")
        for warning in ds.scan.get("warnings", []):
            print(f"warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
