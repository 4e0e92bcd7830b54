"""The compiled fast fit (ONNX) vs PyMca's FastXRFLinearFit on the same spectra.

    python bench/bench_fastfit.py [--spectra 4096] [--batch 256] [--seconds 3]

Spectra: Poisson resamples of the real IXRF ATLAS map (100 ms pixels, 4096 channels at
10 eV) with the config of its instrument description, and of the real M6 spectrum scaled to
a 100 ms pixel with m6.cfg; each also on a 20 eV grid (the spectra rebinned, the config's
keV widths giving half the SNIP and smoothing channels). PyMca fits the whole batch in one
call, as training.labels does (its configuration, seconds per call, timed apart and left out
of its rate), and one spectrum at a time as a live fit would (--pixels of them). The ratio is
ONNX over PyMca's whole-map call, its fastest use. Both sides are timed in CPU seconds of
this process (one ONNX Runtime thread; PyMca's numpy as it comes), so other load on the box
does not bend the ratio; the wall-clock rate of two ONNX workers is printed beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PyMca5.PyMcaIO.ConfigDict import ConfigDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.fastfit import ConfiguredFit, build_model, configured_fit, pymca_fast_fit  # noqa: E402
from export.fastfit_graph import build_graph, session  # noqa: E402
from proto.energy import EnergyGrid, rebin  # noqa: E402
from proto.instrument import load as load_description  # noqa: E402
from training.fitconfig import make_config  # noqa: E402
from training.labels import CONFIG_DIR, INSTRUMENTS_DIR, load_config  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def cpu(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def onnx_rates(sess: ort.InferenceSession, spectra: np.ndarray, batch: int, seconds: float
               ) -> tuple[float, float]:
    """(spectra per CPU second on one thread, wall-clock spectra/s of two workers)."""
    chunks = [spectra[i:i + batch] for i in range(0, len(spectra), batch)]
    sess.run(None, {"spectra": chunks[0]})
    best, spent = 0.0, 0.0
    while spent < seconds:
        t = cpu(lambda: [sess.run(None, {"spectra": c}) for c in chunks])
        spent += t
        best = max(best, len(spectra) / t)
    with ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda c: sess.run(None, {"spectra": c}), chunks))
        wall = len(spectra) / (time.perf_counter() - t0)
    return best, wall


def pymca_rate(spectra: np.ndarray, cfg: ConfigDict, fitter: ConfiguredFit) -> float:
    """Spectra per CPU second of PyMca's whole-batch call (best of two), its configuration
    step (which every plain fitMultipleSpectra call pays again) already done in `fitter`."""
    return len(spectra) / min(
        cpu(lambda: pymca_fast_fit(spectra, cfg, per_pixel=False, fitter=fitter))
        for _ in range(2))


def pymca_pixel_rate(spectra: np.ndarray, cfg: ConfigDict, fitter: ConfiguredFit) -> float:
    """Spectra per CPU second of PyMca called on one spectrum at a time, as a live fit sees
    them (configuration done once): its refit then runs per pixel, up to 2P + 1 solves."""
    return len(spectra) / cpu(lambda: pymca_fast_fit(spectra, cfg, fitter=fitter))


def cases(n: int, seed: int = 0) -> list[tuple[str, np.ndarray, ConfigDict, EnergyGrid]]:
    rng = np.random.default_rng(seed)
    ixrf = np.load(DATA / "ixrf_atlas" / "ts2_01_sub_export_data.npy").reshape(-1, 4096)
    ixrf = rng.poisson(ixrf[rng.integers(0, len(ixrf), n)]).astype(np.float32)
    from rsciio.bruker import file_reader

    m6 = np.asarray(file_reader(str(DATA / "bruker_m6_jetstream_example.spx"))[0]["data"])
    m6 = rng.poisson(m6 * 0.1 / 28.05, (n, m6.size)).astype(np.float32)  # a 100 ms pixel
    desc = load_description(INSTRUMENTS_DIR / "ixrf_atlas.toml")
    coarse = dataclasses.replace(desc, calibration=dataclasses.replace(
        desc.calibration, gain_kev=0.02, channels=2048))
    g_ixrf, g_coarse = desc.calibration.grid, coarse.calibration.grid
    m6_grid = EnergyGrid(-0.95550444, 0.009999, 4096)
    m6_coarse = EnergyGrid(m6_grid.offset, 2 * m6_grid.gain, 2048)
    m6_cfg = load_config(CONFIG_DIR / "m6.cfg")
    m6_coarse_cfg = load_config(CONFIG_DIR / "m6.cfg", m6_coarse)
    for key, width in (("snipwidth", 20), ("stripfilterwidth", 13)):  # same keV as 10 eV/ch
        m6_coarse_cfg["fit"][key] = width
    quick = {"continuum_bin_kev": 3.0}
    return [
        ("IXRF 10 eV", ixrf, make_config(desc, **quick), g_ixrf),
        ("IXRF 20 eV", rebin(ixrf, g_ixrf, g_coarse).astype(np.float32),
         make_config(coarse, **quick), g_coarse),
        ("M6 10 eV", m6, m6_cfg, m6_grid),
        ("M6 20 eV", rebin(m6, m6_grid, m6_coarse).astype(np.float32), m6_coarse_cfg, m6_coarse),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spectra", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pixels", type=int, default=16,
                        help="spectra PyMca fits one at a time (slow: refits per pixel)")
    args = parser.parse_args(argv)
    print(f"{'case':11} {'window':>6} {'snip':>4} {'PyMca map /cpu-s':>16} {'(setup s)':>9} "
          f"{'PyMca pixel /cpu-s':>18} {'ONNX /cpu-s':>11} {'ratio':>6} "
          f"{'ONNX 2 workers /s':>17}")
    for name, spectra, cfg, grid in cases(args.spectra):
        t0 = time.process_time()
        fitter = configured_fit(cfg)
        setup = time.process_time() - t0
        model = build_model(cfg, grid.channels, fitter=fitter)
        sess = session(build_graph(model), threads=1)
        ours, wall = onnx_rates(sess, spectra, args.batch, args.seconds)
        theirs = pymca_rate(spectra.astype(np.float64), cfg, fitter)
        pixel = pymca_pixel_rate(spectra[:args.pixels].astype(np.float64), cfg, fitter)
        print(f"{name:11} {model.window:6d} {model.snip_width:4d} {theirs:16.0f} {setup:9.1f} "
              f"{pixel:18.0f} {ours:11.0f} {ours / theirs:6.1f} {wall:17.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
