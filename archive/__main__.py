"""`python -m archive labels|reprocess`: a lab's archive on Dask, from one machine to a cluster.

  labels     PyMca fast-fit labels (labels/element_maps) for many dataset files
  reprocess  a bundle set over many recordings: their `predictions` group

A LocalCluster of --workers processes by default; --scheduler ADDRESS uses a running
cluster (`dask scheduler`, then `dask worker ADDRESS` on each machine, with this package
installed and the data at the same paths). Exit 0 when every dataset is done or skipped
(done and verified), 1 when any block failed after its retries (each named), 2 for usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from archive.cluster import ArchiveError, connect
from archive.labels import Summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("labels", help="PyMca fast-fit labels for many datasets",
                         description="PyMca fast-fit labels for many datasets, on Dask.")
    lab.add_argument("datasets", nargs="+", help="dataset files (proto/DATASET.md)")
    cfg = lab.add_mutually_exclusive_group(required=True)
    cfg.add_argument("--cfg", type=Path, help="PyMca fit configuration (.cfg)")
    cfg.add_argument("--instrument", help="instrument description (TOML, proto/INSTRUMENT.md) "
                                          "or a preset name (m6, m1): the config is derived")
    lab.add_argument("--no-refine", action="store_true",
                     help="use the config's calibration and resolution as they are")
    rep = sub.add_parser("reprocess", help="run a bundle set over many recordings",
                         description="Run a bundle set over recordings with the edge's own "
                                     "engine; write each one's predictions group.")
    rep.add_argument("recordings", nargs="+", help="recordings (closed dataset files)")
    rep.add_argument("--models", required=True, type=Path,
                     help="bundle folder (as for `python -m edge serve --models`)")
    for p in (lab, rep):
        p.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://host:8786); default: a "
                            "LocalCluster on this machine")
        p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="LocalCluster worker processes, one thread each "
                            "(default: the CPU count)")
        p.add_argument("--block-pixels", type=int, default=16384,
                       help="pixels per task, in whole rows (default 16384, as training.labels)")
        p.add_argument("--retries", type=int, default=2,
                       help="times a failed block is retried before it is reported (default 2)")
        p.add_argument("--force", action="store_true",
                       help="redo datasets that are done and verified")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _config_text(args: argparse.Namespace) -> tuple[str, str]:
    if args.cfg is not None:
        if not args.cfg.is_file():
            raise ArchiveError(f"no such fit configuration: {args.cfg}")
        return args.cfg.read_text(), args.cfg.name
    from training.labels import make_config

    try:
        cfg = make_config(args.instrument)
    except (OSError, ValueError, KeyError) as e:
        raise ArchiveError(f"instrument {args.instrument}: {e}") from e
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instrument.cfg"
        cfg.write(str(path))
        return path.read_text(), f"{Path(args.instrument).name} (derived config)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1 or args.block_pixels < 1 or args.retries < 0:
        parser.error("--workers and --block-pixels must be >= 1, --retries >= 0")
    files = args.datasets if args.command == "labels" else args.recordings
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    options = {"block_pixels": args.block_pixels, "retries": args.retries, "force": args.force,
               "progress": not args.no_progress}
    t0 = time.perf_counter()
    try:
        with connect(args.scheduler, args.workers) as client:
            if args.command == "labels":
                from archive.labels import label_datasets

                text, name = _config_text(args)
                summary = label_datasets(client, files, text, name,
                                         refine=not args.no_refine, **options)
            else:
                from archive.reprocess import reprocess

                summary = reprocess(client, files, args.models, **options)
    except ArchiveError as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 1
    return report(args.command, summary, time.perf_counter() - t0)


def report(command: str, s: Summary, seconds: float) -> int:
    for f in s.failed:
        print(f"[archive] FAILED {f}", file=sys.stderr)
    rate = s.spectra / seconds if seconds > 0 else 0.0
    print(f"[archive] {command}: {len(s.done)} done, {len(s.skipped)} skipped (done and "
          f"verified), {len({f.job for f in s.failed})} failed; {s.spectra} spectra in "
          f"{seconds:.1f} s ({rate:.0f} spectra/s)")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
