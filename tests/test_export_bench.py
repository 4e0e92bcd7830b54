"""bench/bench_models.py runs on tiny bundles, including the fused-graph comparison."""

import importlib.util
from pathlib import Path

import numpy as np

from edge.models import ModelSession
from export.tiny import write_tiny_bundles

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_models",
                                                  ROOT / "bench" / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fused_graph_equals_the_three_bundles(tmp_path) -> None:
    import onnxruntime as ort

    bench = load_bench()
    folders = write_tiny_bundles(tmp_path)
    fused = ort.InferenceSession(bench.fused_graph(folders), providers=["CPUExecutionProvider"])
    x = bench.spectra(9, 1024)
    outs = dict(zip([o.name for o in fused.get_outputs()], fused.run(None, {"spectra": x}),
                    strict=True))
    for kind, folder in folders.items():
        s = ModelSession(folder)
        np.testing.assert_allclose(outs[f"{kind}_{s.manifest.output_name}"], s.run(x),
                                   rtol=1e-6)


def test_bench_prints_every_bundle(tmp_path, capsys) -> None:
    bench = load_bench()
    write_tiny_bundles(tmp_path)
    assert bench.main(["--models", str(tmp_path), "--seconds", "0.03"]) == 0
    out = capsys.readouterr().out
    for line in ("rgb ", "elements ", "trust ", "all 3, fused graph", "fused / one by one"):
        assert line in out
