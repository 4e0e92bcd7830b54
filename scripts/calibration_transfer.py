"""Which part of a detector's calibration a compiled fast fit needs: one bundle calibrated on
detector A, run on detector B of the same pixels, against PyMca on B.

    python scripts/calibration_transfer.py [SCAN] [--instrument TOML] [--a 0] [--b 1]

PyMca refines each detector's calibration (zero, gain, noise, Fano) on its own sum spectrum,
as its user does. The fast fit is then compiled with A's, with A's but B's zero and gain, with
A's but B's noise and Fano, at B's stated (file) zero and gain, and with B's own; each row is
Pearson r per element against PyMca's fit of B, over every pixel. On the IXRF map it shows
that detector 1's Mn is lost to its zero and gain (a shift of ~12 eV at Mn K-alpha, in the tail
of a 50x brighter Fe), not to its resolution: calibrate each detector element on its own.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.calib_data import LabScan, PymcaRef, load_scan  # noqa: E402
from export.element_bundle import FitOnGrid  # noqa: E402
from export.fastfit import build_model, configured_fit  # noqa: E402
from proto.instrument import load as load_description  # noqa: E402

IXRF = ROOT.parent / "shared" / "data" / "ixrf_atlas" / "ts2_01_sub_export.GeoPIXE"


def correlations(cfg, scan: LabScan, labels: np.ndarray) -> list[float]:
    """r per output of the fast fit compiled from `cfg`, on `scan`, against `labels`."""
    model = build_model(cfg, scan.grid.channels, fitter=configured_fit(cfg))
    live = np.maximum(scan.live_time_s, 1e-12)
    areas, _ = FitOnGrid(model, scan.grid)(scan.counts / live[:, None], live)
    return [float(np.corrcoef(areas[:, j], labels[:, j])[0, 1]) for j in range(labels.shape[1])]


def with_detector(cfg, source, keys: tuple[str, ...]):
    out = copy.deepcopy(cfg)
    for k in keys:
        out["detector"][k] = source["detector"][k]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan", nargs="?", default=str(IXRF))
    ap.add_argument("--instrument", default=str(ROOT / "training/instruments/ixrf_atlas.toml"))
    ap.add_argument("--a", default="0", help="the detector the bundle is calibrated on")
    ap.add_argument("--b", default="1", help="the detector it runs on")
    args = ap.parse_args(argv)
    if not Path(args.scan).exists():
        print(f"no {args.scan}: name a multi-detector scan")
        return 2
    desc = load_description(args.instrument)
    a, b = (load_scan(args.scan, d, desc) for d in (args.a, args.b))
    ref = PymcaRef(desc)
    fit_a, fit_b = (ref.fitted(s.counts, s.grid, s.live_time_s) for s in (a, b))
    labels = fit_b.labels(b.counts, b.live_time_s)
    stated = copy.deepcopy(fit_a.cfg)
    stated["detector"]["zero"], stated["detector"]["gain"] = b.grid.offset, b.grid.gain
    rows = {
        f"{a.name}'s calibration": fit_a.cfg,
        f"{a.name}'s, {b.name}'s zero and gain": with_detector(fit_a.cfg, fit_b.cfg,
                                                               ("zero", "gain")),
        f"{a.name}'s, {b.name}'s noise and Fano": with_detector(fit_a.cfg, fit_b.cfg,
                                                                ("noise", "fano")),
        f"{a.name}'s noise and Fano at {b.name}'s stated zero and gain": stated,
        f"{b.name}'s own": fit_b.cfg,
    }
    for name, fitted in ((a.name, fit_a), (b.name, fit_b)):
        print(f"PyMca refined on {name}: " + ", ".join(
            f"{k} {v:.5g}" for k, v in fitted.refined.items()))
    outputs = fit_b.model.outputs
    print(f"\nr against PyMca on {b.name}, {len(labels)} pixels\n")
    print("| fast fit compiled with | " + " | ".join(outputs) + " |")
    print("|---|" + "---|" * len(outputs))
    for name, cfg in rows.items():
        print(f"| {name} | " + " | ".join(f"{r:.3f}" for r in correlations(cfg, b, labels))
              + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
