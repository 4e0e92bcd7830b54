"""`make bench` (models part): ONNX Runtime spectra/s per bundle at batch 1, 16 and 256.

    python bench/bench_models.py [--models models] [--threads 2] [--seconds 1]
    python bench/bench_models.py --stand-in     # untrained default architectures

Every bundle folder under --models (the three defaults first, then any
baseline exported with `python -m export model NAME`) runs through
edge.models.ModelSession (what the daemon runs), on
counts/s spectra, with a fixed ORT intra-op pool of --threads. Also measured:
the three bundles called one after another per batch (what the daemon does)
against one fused graph holding all three behind a shared "spectra" input
(onnx.compose), to see whether fusing pays.

--stand-in exports the default architectures with random weights (rgb MLP
1024-256-64-3, element MLP 1024-256-8, trust autoencoder 1024-512-128-32-8-3-...
-1024) through the real exporter, for when nothing is trained yet: the same
arithmetic as the trained models.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edge.models import ModelSession, session_options
from proto.bundle import KINDS, load_bundle

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 16, 256)
LIVE_S = 0.01  # the bench's pixels: 10 ms of live time


def spectra(n: int, channels: int, seed: int = 0) -> np.ndarray:
    """Counts/s resembling a 10 ms pixel: sparse Poisson counts / LIVE_S."""
    rng = np.random.default_rng(seed)
    lam = 0.5 * np.exp(-np.linspace(0.0, 4.0, channels))
    return (rng.poisson(lam, (n, channels)) / LIVE_S).astype(np.float32)


def rate(fn, batch: int, seconds: float, repeats: int = 3) -> float:
    """Spectra/s of fn(): best of `repeats` runs of about seconds/repeats each, after a
    warm-up (best-of, because other processes on a 2-core box only ever slow a run down)."""
    for _ in range(3):
        fn()
    best = 0.0
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= seconds / repeats and n >= 5:
                break
        best = max(best, n * batch / dt)
    return best


def fused_graph(folders: dict[str, Path]) -> bytes:
    """One graph: the three bundles' graphs side by side on one shared input."""
    merged = None
    for kind, folder in folders.items():
        m = onnx.load_from_string(load_bundle(folder).model_bytes)
        m = onnx.compose.add_prefix(m, f"{kind}_")
        # un-prefix the input so the graphs share it
        old = f"{kind}_spectra"
        for node in m.graph.node:
            node.input[:] = ["spectra" if i == old else i for i in node.input]
        m.graph.input[0].name = "spectra"
        if merged is None:
            merged = m
            continue
        g = merged.graph
        g.node.extend(m.graph.node)
        g.initializer.extend(m.graph.initializer)
        g.output.extend(m.graph.output)
        domains = {(o.domain, o.version) for o in merged.opset_import if o.domain}
        for o in m.opset_import:
            if o.domain and (o.domain, o.version) not in domains:
                merged.opset_import.append(o)
    onnx.checker.check_model(merged)
    return merged.SerializeToString()


def stand_in_bundles(folder: Path) -> Path:
    import torch

    from export.bundles import export_model
    from export.heldout import augment, synthetic
    from export.torch_export import autoencoder_parts
    from proto.elements import ELEMENTS
    from training import models
    from training.preprocess import MODEL_GRID, Preprocess

    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = augment(synthetic(MODEL_GRID, 1024))
    pre = Preprocess.fit(x)
    g = MODEL_GRID.to_dict()
    base = {"grid": g, "train_data": {"scene": "none (random weights)"}, "metrics": {}}
    _, trust = autoencoder_parts(pre.module(), models.AutoEncoder(MODEL_GRID.channels))
    jobs = {
        "rgb": (models.rgb_mlp(pre).eval(), {"kind": "rgb", "outputs": ["R", "G", "B"],
                                             "units": "sRGB 0..1"}),
        "elements": (models.element_mlp(pre, np.ones(8)).eval(),
                     {"kind": "elements", "outputs": list(ELEMENTS), "units": "counts/s"}),
        "trust": (trust, {"kind": "trust", "outputs": ["reconstruction_error"],
                          "units": "mse"}),
    }
    for kind, (model, info) in jobs.items():
        export_model(model, {**base, **info}, folder / kind, x, "synthetic", f"stand-in {kind}")
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(ROOT / "models"),
                    help="folder of bundles (default: the repository's models/)")
    ap.add_argument("--stand-in", action="store_true", help="bench untrained default shapes")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="measuring time per bundle and batch size")
    a = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    models = Path(a.models)
    if a.stand_in or not (models / "rgb" / "manifest.json").exists():
        print(f"{'--stand-in' if a.stand_in else f'no bundles in {models}'}: "
              "exporting random-weight default architectures")
        models = stand_in_bundles(Path(tmp.name))
    folders = {k: models / k for k in KINDS if (models / k / "manifest.json").exists()}
    others = {p.parent.name: p.parent for p in sorted(models.glob("*/manifest.json"))
              if p.parent.name not in folders}
    print(f"ONNX Runtime {ort.__version__}, {a.threads} intra-op threads, spectra/s "
          f"(higher is better), bundles in {models}")
    print(f"{'bundle':<22}" + "".join(f"{f'batch {b}':>12}" for b in BATCHES) + "   graph")
    every = {k: ModelSession(f, threads=a.threads) for k, f in {**folders, **others}.items()}
    sessions = {k: every[k] for k in folders}
    channels = {s.manifest.grid.channels for s in sessions.values()}
    x = spectra(max(BATCHES), max(s.manifest.grid.channels for s in every.values()))
    live = np.full(len(x), LIVE_S, np.float32)  # for bundles that take it (BUNDLE.md)
    for kind, s in every.items():
        xs = x[:, : s.manifest.grid.channels]
        rates = [rate(lambda s=s, b=b, xs=xs: s.run(xs[:b], live[:b]), b, a.seconds)
                 for b in BATCHES]
        size = s.bundle.model_path.stat().st_size / 2**20
        print(f"{kind:<22}" + "".join(f"{r:>12,.0f}" for r in rates) +
              f"   {size:.2f} MiB, {s.manifest.training.get('model', '?')}")
    # the fused graph shares one input: only for bundles that take nothing else
    if len(sessions) == 3 and len(channels) == 1 and not any(
            s.extra_inputs for s in sessions.values()):
        fused = ort.InferenceSession(fused_graph(folders), session_options(a.threads),
                                     providers=["CPUExecutionProvider"])
        seq, fus = [], []
        for b in BATCHES:  # interleaved, so both see the same background load
            seq.append(rate(lambda b=b: [s.run(x[:b], live[:b]) for s in sessions.values()], b,
                            a.seconds))
            fus.append(rate(lambda b=b: fused.run(None, {"spectra": x[:b]}), b, a.seconds))
        print(f"{'all 3, one by one':<22}" + "".join(f"{r:>12,.0f}" for r in seq))
        print(f"{'all 3, fused graph':<22}" + "".join(f"{r:>12,.0f}" for r in fus))
        print("fused / one by one:   " + "".join(f"{f / s:>12.2f}" for f, s in zip(fus, seq,
                                                                              strict=True)))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
