"""`make bench` (element bundle): end to end, the models alone and PyMca, in one run.

    python bench/bench_elements.py [--pixels 48000] [--quick]

The element bundle is made here by `export.calibrate` from the real IXRF map (detector 0,
--quick): PyMca's fast fit compiled at its calibration, plus the residual where one is kept;
its grid, 4096 channels at 10 eV from 0, is the bench stream's (bench/bench_edge.py). The rgb
and trust bundles are models/'s when it has them, else stand-in MLPs of the default size.

1. end to end: a sender process -> `python -m edge serve` (recorder on, every bundle with its
   in-domain test) -> a watcher, 16 pixels per message (bench_edge.end_to_end): spectra/s of
   wall time, and per CPU second of the daemon (the box is shared); with the daemon's 2 ORT
   threads a model, and with 1 (the basis of the models-alone rows);
2. the same bundles alone: the daemon's own inference (edge.inference.Engine: rebin, live
   time, every model, domain checks) on 4096 distinct spectra of the same kind, 256 and 16
   per call, spectra per CPU second (a mean over passes); the element bundle alone, with each
   pixel's SNIP and with the scan's continuum (proto.continuum: no SNIP), and its SNIP
   background alone (the graph's clip passes), 256 per call; and the elements the scan's
   continuum served in the Engine's run (a mixed choice runs the element graph twice);
3. PyMca's FastXRFLinearFit on the same spectra, the whole batch in one call (its fastest
   use; its configuration done once, not timed), and its own C SNIP alone, spectra per CPU s;
4. the ratios, and the arithmetic of the SNIP ceiling from the measured figures. End to end /
   models alone is read twice: from the daemon's own count of the same run (its CPU inside
   the models, of all its CPU: status `cpu_ms`), and across the separate runs of 1 and 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# numpy's BLAS threads: on this 2-core shared box a 16-spectrum in-domain projection
# (proto.domain) took ~33 ms with them and ~0.5 ms without; the daemon (a child of this
# process) inherits the setting. Said in the output.
BLAS = {k: os.environ.setdefault(k, "1") for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_edge  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from export.fastfit import FastFitModel, configured_fit, pymca_fast_fit  # noqa: E402
from export.fastfit_graph import (  # noqa: E402
    _Graph,
    _snip,
    background_check,
    build_graph,
    session,
)
from proto.continuum import continuum_rows  # noqa: E402
from tests.edge_support import make_bundles  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
IXRF = DATA / "ixrf_atlas" / "ts2_01_sub_export.GeoPIXE"
TOML = ROOT / "training" / "instruments" / "ixrf_atlas.toml"
POOL = 4096  # distinct spectra the models-alone rows run on
BATCH = 256  # spectra a call: the daemon's micro-batch when it is busy
TARGET_E2E, TARGET_SHARE, TARGET_PYMCA = 80_000, 0.8, 20.0  # issue 13's targets


def cpu_rate(fn, n: int, seconds: float = 2.0) -> float:
    """Spectra per CPU second of this process, over passes of at least `seconds` of CPU in
    all (after one warm-up): a mean, as the end-to-end runs are; the best pass read up to
    25 % higher here, the box being shared."""
    fn()
    done, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        fn()
        done += n
    return done / max(time.process_time() - t0, 1e-9)


def models_folder(tmp: Path, models: Path) -> tuple[Path, dict]:
    """tmp/models with the calibrated element bundle and rgb/trust (models/ or stand-ins)."""
    from export.calibrate import calibrate

    out = tmp / "models"
    make_bundles(out, grid=bench_edge.MODEL, hidden=256)
    for kind in ("rgb", "trust"):
        if (models / kind / "manifest.json").exists():
            shutil.rmtree(out / kind)
            shutil.copytree(models / kind, out / kind)
    shutil.rmtree(out / "elements")
    summary = calibrate(TOML, [IXRF], out, detector="0", quick=True, work=tmp / "work",
                        progress=False)
    return out, summary


def engine_rate(folder: Path, spectra: np.ndarray, live: np.ndarray, batch: int
                ) -> tuple[float, list[str]]:
    """The daemon's inference alone (edge.inference.Engine.run_checked), per CPU second, and
    the elements the scan's continuum served at the end (proto.continuum: where the choice
    is mixed the element graph runs twice)."""
    from edge.inference import Engine, load_models

    sessions = load_models(folder, threads=1)
    engine = Engine(sessions, bench_edge.STREAM, batch)
    chunks = [(spectra[i:i + batch], live[i:i + batch]) for i in range(0, len(spectra), batch)]
    rate = cpu_rate(lambda: [engine.run_checked(c, t) for c, t in chunks], len(spectra))
    return rate, engine.backgrounds().get("elements", {}).get("continuum_for", [])


def in_batches(sess, x: np.ndarray, batch: int = BATCH, **feed: np.ndarray) -> None:
    for i in range(0, len(x), batch):
        sess.run(None, {"spectra": x[i:i + batch], **feed})


def snip_graph(model: FastFitModel) -> onnx.ModelProto:
    """The fast fit's SNIP passes alone, on the fit window (what caps the compiled fit)."""
    g = _Graph()
    out = _snip(g, model, "spectra")
    g.nodes.append(helper.make_node("Identity", [out], ["bg"], name="out_bg"))
    graph = helper.make_graph(g.nodes, "snip", [helper.make_tensor_value_info(
        "spectra", TensorProto.FLOAT, ["N", model.window])], [helper.make_tensor_value_info(
            "bg", TensorProto.FLOAT, ["N", model.window])], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--pixels", type=int, default=48_000)
    ap.add_argument("--quick", action="store_true", help="fewer pixels (a smoke run)")
    a = ap.parse_args(argv)
    if not IXRF.exists():
        print(f"element bench skipped: no {IXRF}")
        return 0
    pixels = 8000 if a.quick else a.pixels
    tmp = Path(tempfile.mkdtemp(prefix="bench_elements_"))
    try:
        t0 = time.perf_counter()
        folder, summary = models_folder(tmp, a.models)
        print(f"element bundle: export.calibrate on the IXRF map, detector 0 "
              f"({time.perf_counter() - t0:.0f} s): serves {summary['serves']}; outputs "
              f"{', '.join(summary['outputs'])}")
        print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        e2e = bench_edge.end_to_end(folder, tmp, pixels, 16, True)
        # the daemon's default is 2 ORT threads a model (more spectra/s of wall time, more CPU
        # a spectrum); the models-alone rows run one, so one thread is their like-for-like
        bench_edge.DAEMON_ARGS.extend(["--threads", "1"])
        e2e1 = bench_edge.end_to_end(folder, tmp, pixels, 16, True)
        # every spectrum comes once, as in the daemon: a pool that stays in the CPU's cache
        # (256) ran the models up to 30 % faster than the daemon can
        pool = bench_edge.spectra_pool(POOL)
        live = np.full(len(pool), 0.001, np.float32)
        alone, chosen = engine_rate(folder, pool, live, BATCH)
        alone16, _ = engine_rate(folder, pool, live, 16)
        from export.calib_data import PymcaRef
        from proto.instrument import load

        ref = PymcaRef(load(TOML), quick=True, refine=False)
        fitted = ref.fitted(pool.astype(np.float64), bench_edge.STREAM, live)
        fit_sess = session(build_graph(fitted.model), threads=1)
        x = pool.astype(np.float32)
        fit_rate = cpu_rate(lambda: in_batches(fit_sess, x), len(x))
        m = fitted.model
        # with the scan's continuum (proto.continuum: the pool's sum, stripped once) the
        # graph's If skips SNIP: what a scan serves once its sum holds 100 pixels
        rows = continuum_rows(background_check(m, bench_edge.STREAM), pool.sum(axis=0))
        cont_sess = session(build_graph(m, continuum=True), threads=1)
        cont_rate = cpu_rate(lambda: in_batches(cont_sess, x, continuum=rows), len(x))
        snip_sess = session(snip_graph(m), threads=1)
        win = np.ascontiguousarray(x[:, m.first:m.first + m.window])
        snip_rate = cpu_rate(lambda: in_batches(snip_sess, win), len(win))
        from PyMca5.PyMcaMath.fitting import SpecfitFuns

        win64 = win.astype(np.float64)  # PyMca's own SNIP (C), same window and width
        pymca_snip = cpu_rate(lambda: SpecfitFuns.snip1d(win64, m.snip_width, 0), len(win64))
        fitter = configured_fit(fitted.cfg)
        big = pool.astype(np.float64)
        pymca = cpu_rate(lambda: pymca_fast_fit(big, fitted.cfg, per_pixel=False,
                                                fitter=fitter), len(big), seconds=1.0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    values = m.snip_width * (m.window - 1 + 4 * m.snip_width)
    cores = os.cpu_count() or 1
    rows = [
        ("end to end, 16 px/msg, recorder on (wall)", e2e["rate"]),
        ("end to end, per daemon CPU second", e2e["cpu_rate"]),
        ("end to end, 1 ORT thread a model (wall)", e2e1["rate"]),
        ("end to end, 1 ORT thread a model, per daemon CPU second", e2e1["cpu_rate"]),
        (f"every served model + domain checks alone (Engine, {BATCH}/call), per CPU s", alone),
        ("the same, 16 spectra per call, per CPU s", alone16),
        (f"element bundle's fast fit alone ({BATCH}/call), per CPU s", fit_rate),
        ("the same with the scan's continuum (no SNIP), per CPU s", cont_rate),
        ("its SNIP background alone, per CPU s", snip_rate),
        ("PyMca FastXRFLinearFit, whole batch, per CPU s", pymca),
        ("PyMca's own SNIP (C, same window and width) alone, per CPU s", pymca_snip),
    ]
    print(f"stream: 4096 channels uint16, ~3000 counts/pixel; {pixels} pixels end to end; "
          + ", ".join(f"{k}={v}" for k, v in BLAS.items()))
    for name, rate in rows:
        print(f"  {name:<62} {rate:>9,.0f} spectra/s")
    # end to end / models alone, per CPU second, is the share of the daemon's CPU spent in its
    # models; the daemon counts it in the same run (status cpu_ms), free of what the shared
    # box does between two separate runs (across runs it read 0.65 to 0.93 on this box)
    both = 1 / (1 / fit_rate + 1 / cont_rate)  # one pass with each background
    print(f"the scan's continuum served {', '.join(chosen) or 'no element'} in the models-alone "
          f"run; where the choice is mixed the element graph runs once with each background: "
          f"{both:,.0f} spectra per CPU s by the fit-alone rows above")
    print(f"ratios: end to end / models alone, in the same run (the daemon's CPU in its "
          f"models, of all its CPU): {e2e['models_share']:.2f}, with 1 ORT thread a model "
          f"{e2e1['models_share']:.2f} (target >= {TARGET_SHARE}); across separate runs "
          f"(end to end per daemon CPU s / models alone): {e2e['cpu_rate'] / alone:.2f}, with 1 "
          f"thread {e2e1['cpu_rate'] / alone:.2f}; models alone / PyMca {alone / pymca:.1f}x, "
          f"end to end (wall) / PyMca {e2e['rate'] / pymca:.1f}x (target >= {TARGET_PYMCA:g}x)")
    print(f"arithmetic: SNIP = {m.snip_width} clip passes over {m.window - 1} + "
          f"{4 * m.snip_width} padded values = {values:,} values per spectrum; at the measured "
          f"{snip_rate:,.0f} spectra/s that is {values * snip_rate / 1e9:.2f} G values/s per core, "
          f"so one core caps the fast fit near {snip_rate:,.0f}/s and {cores} cores near "
          f"{cores * snip_rate:,.0f}/s before the rest of the fit, the other models, decoding "
          f"and recording; {TARGET_E2E:,} spectra/s would need "
          f"{TARGET_E2E / snip_rate:.0f} cores for SNIP alone "
          f"({'met' if e2e['rate'] >= TARGET_E2E else 'NOT met'}: {e2e['rate']:,.0f}/s). "
          f"Once a scan's continuum serves (from its 101st pixel, proto.continuum) SNIP "
          f"is skipped and the fit runs at {cont_rate:,.0f}/s a core: 80,000/s needs "
          f"{TARGET_E2E / cont_rate:.0f} cores for the fit alone")
    # the fit is PyMca's own algorithm: its SNIP is the same passes, so 20x PyMca's fast fit
    # asks our SNIP to outrun PyMca's C SNIP by (20 x PyMca's fit rate) / its SNIP rate
    print(f"arithmetic: PyMca's fast fit spends {pymca / pymca_snip:.0%} of its time in its C "
          f"SNIP; {TARGET_PYMCA:g}x PyMca ({TARGET_PYMCA * pymca:,.0f}/s) needs the same SNIP "
          f"passes {TARGET_PYMCA * pymca / pymca_snip:.1f}x faster than PyMca's C on the same "
          f"cores (ours: {snip_rate / pymca_snip:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
