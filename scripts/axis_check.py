"""The energy axis the edge reads each stream of a file on, without a daemon (proto.energy_axis).

    python scripts/axis_check.py FILE[:DETECTOR] ... [--models models]

Each file is read as `make calibrate` reads it (training.readers: our .h5 datasets, Bruker
.spx, GeoPIXE, APS HDF5); a multi-detector file one detector at a time unless one is named.
For each stream, the elements bundle's check on its first pixels in scan order, as the
daemon decides it: e.g. the IXRF map against the bundle `make calibrate` built on detector 0
(`--models artifacts/calibrated`), or a simulated scene against the default bundle.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.models import ModelSession  # noqa: E402
from proto.bundle import BundleError  # noqa: E402
from proto.energy_axis import decide_in_order  # noqa: E402
from training.readers import ReaderError, read  # noqa: E402


def streams(spec: str):
    """(name, counts (N, C) in scan order, stated grid) of `file` or `file:detector`."""
    path, _, det = spec.partition(":")
    scan = read(path)
    names = scan.detector_names
    picks = [scan.select(d) for d in ([det] if det else names)] if names else [scan]
    for label, s in zip([det] if det else (names or [""]), picks, strict=True):
        if s.grid is None:
            raise ReaderError(Path(path), "no energy calibration in the file")
        yield (Path(path).name + (f"[{label}]" if label else ""),
               s.counts.reshape(-1, s.counts.shape[-1]), s.grid)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="FILE or FILE:DETECTOR")
    ap.add_argument("--models", type=Path, default=ROOT / "models",
                    help="a models folder with an elements bundle (default: models)")
    a = ap.parse_args(argv)
    try:
        session = ModelSession(a.models / "elements", threads=1)
    except BundleError as e:
        print(f"no elements bundle to check with: {e}")
        return 2
    if session.axis is None:
        print(f"{a.models / 'elements'} declares no energy-axis check (export it again)")
        return 2
    for spec in a.files:
        try:
            for name, counts, grid in streams(spec):
                verdict = decide_in_order(session.axis, counts, grid)
                print(f"{name}: stated zero {grid.offset:.5f} keV, gain {grid.gain:.7f} keV. "
                      f"{verdict.line()}")
        except (ReaderError, OSError) as e:
            print(f"{spec}: cannot read it ({e})")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
