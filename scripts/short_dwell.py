"""The real M6 spectrum at a pixel's dwell: what the served element bundle says of it.

    python scripts/short_dwell.py [--models models] [--dwell-ms 10 100 1000] [--draws 500]
        [--ready-pixels 100]

The one real M6 spectrum (28 s live) is thinned binomially to each dwell: each draw is what a
pixel of that dwell would have counted on the same spot. The draws are streamed as one scan
is (edge.inference.Engine, on the axis its energy-axis check decides), 16 pixels a message:
the first pixels, until the scan's sum holds `--ready-pixels`, with each pixel's own SNIP
background, then with the scan's continuum where the scan finds SNIP biased (per element,
proto.continuum). Per element, beside the 28 s spectrum's own value: the mean served area
of `--draws` pixels with each pixel's SNIP (as before the continuum) and of the `--draws`
pixels served right after the continuum is ready ("served"); for the latter the mean
reported sigma, the draws' spread and the mean's distance from the 28 s value in sigmas
("off"); the share the live mask calls detected (area above 3 sigma) as served and, in
"(SNIP)", with each pixel's SNIP; and whether the 28 s value itself is above 3 sigma at that
dwell ("should").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference import Engine, ModelSession  # noqa: E402
from proto.continuum import READY_PIXELS  # noqa: E402
from proto.elements import map_outputs  # noqa: E402
from proto.energy_axis import decide_in_order  # noqa: E402
from training.readers import read  # noqa: E402

SPX = ROOT.parent / "shared" / "data" / "bruker_m6_jetstream_example.spx"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--spectrum", type=Path, default=SPX)
    ap.add_argument("--dwell-ms", type=float, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--ready-pixels", type=int, default=READY_PIXELS,
                    help="the scan's sum serves from this many pixels on (proto.continuum)")
    a = ap.parse_args(argv)
    if not (a.models / "elements" / "manifest.json").exists() or not a.spectrum.exists():
        print(f"short_dwell: needs {a.models / 'elements'} (make train export) and "
              f"{a.spectrum}", file=sys.stderr)
        return 1
    scan = read(a.spectrum)
    counts, live = scan.counts.reshape(1, -1).astype(np.int64), float(np.ravel(scan.live_time_s)[0])
    session = ModelSession(a.models / "elements", threads=2)
    verdict = None if session.axis is None else decide_in_order(session.axis, counts, scan.grid)
    engine = Engine({"elements": session}, scan.grid if verdict is None else verdict.served,
                    512)
    names = session.manifest.outputs
    g = len(map_outputs(names))
    whole = engine.run(counts, np.array([live], np.float32))["elements"][0, :g]
    rng = np.random.default_rng(0)
    for ms in a.dwell_ms:
        def pixels(n: int, share: float = ms / 1e3 / live) -> np.ndarray:
            return rng.binomial(counts[0], share, (n, counts.shape[1]))

        dwell = np.full(a.draws, ms / 1e3, np.float32)
        alone = Engine({"elements": session}, engine.grid, 512)
        alone.continua.clear()  # each pixel's own SNIP, whatever the sum holds
        snip = alone.run(pixels(a.draws), dwell)["elements"]
        scan = Engine({"elements": session}, engine.grid, 512)  # a fresh scan per dwell
        state = scan.continua["elements"]
        state.ready_pixels = a.ready_pixels
        while not state.ready and state.counts < 1e9:  # until the sum is stripped
            scan.run(pixels(16), np.full(16, ms / 1e3, np.float32))
        thin = pixels(a.draws)
        out = scan.run(thin, dwell)["elements"]
        areas, sigma = out[:, :g], out[:, g:2 * g]
        print(f"\n{ms:g} ms ({thin.sum(axis=1).mean():,.0f} counts a pixel, {a.draws} pixels "
              f"each; the continuum from pixel {state.pixels[0] - state.pixels[1] + 1:,}, "
              f"served: pixels {state.pixels[0] - a.draws + 1:,} to {state.pixels[0]:,})"
              f"\n{'':3} {'28 s c/s':>9} {'SNIP':>9} {'served':>9} {'sigma':>8} {'spread':>8} "
              f"{'off':>6} {'>3 sigma':>8} {'(SNIP)':>8} {'should':>6}")
        for j, el in enumerate(names[:g]):
            should = whole[j] > 3 * sigma[:, j].mean()
            print(f"{el:3} {whole[j]:9.1f} {snip[:, j].mean():9.1f} {areas[:, j].mean():9.1f} "
                  f"{sigma[:, j].mean():8.1f} {areas[:, j].std():8.1f} "
                  f"{(areas[:, j].mean() - whole[j]) / sigma[:, j].mean():+6.2f} "
                  f"{(areas[:, j] > 3 * sigma[:, j]).mean():8.0%} "
                  f"{(snip[:, j] > 3 * snip[:, g + j]).mean():8.0%} "
                  f"{'yes' if should else 'no':>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
