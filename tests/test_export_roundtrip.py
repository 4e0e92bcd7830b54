"""export/: tiny trained torch and scikit-learn models -> bundles -> ONNX Runtime, in parity."""

import json

import numpy as np
import onnx
import pytest
import torch

from edge.models import ModelSession
from export import graph, parity
from export.__main__ import main as export_main
from export.bundles import convert, export_model, reference
from export.heldout import augment, heldout, synthetic
from export.torch_export import autoencoder_parts
from proto.bundle import load_bundle
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid
from training import artifacts, models
from training.preprocess import Preprocess

GRID = EnergyGrid(0.01, 0.32, 64)  # small, so tests stay fast; divisible by 32 for the CNN
RGB = ["R", "G", "B"]


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    train = synthetic(GRID, 300, seed=1)
    pre = Preprocess.fit(train, GRID)
    rng = np.random.default_rng(0)
    y3 = rng.uniform(0, 1, (300, 3)).astype(np.float32)
    y8 = rng.gamma(1.0, 100.0, (300, 8)).astype(np.float32)
    test = augment(synthetic(GRID, 700, seed=2))  # 1051 held-out spectra
    return pre, train, y3, y8, test


def info(kind: str, outputs, **extra) -> dict:
    units = {"rgb": "sRGB 0..1", "elements": "counts/s", "trust": "mse"}[kind]
    return {"kind": kind, "grid": GRID.to_dict(), "outputs": list(outputs), "units": units,
            "train_data": {"scene": "synthetic"}, "metrics": {"r2": 0.5}, **extra}


def trained_torch(pre, y8) -> dict:
    """A few steps of training so weights are not at their initial values."""
    mlp = models.element_mlp(pre, y8.std(0), hidden=32)
    opt = torch.optim.SGD(mlp.parameters(), lr=1e-3)
    x = torch.from_numpy(synthetic(GRID, 64, seed=3))
    for _ in range(3):
        loss = (mlp(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rgb_ae, trust = autoencoder_parts(pre.module(), models.AutoEncoder(GRID.channels))
    return {
        "element_mlp": (mlp.eval(), info("elements", ELEMENTS)),
        "element_cnn": (models.element_cnn(pre, y8.std(0)).eval(), info("elements", ELEMENTS)),
        "rgb_mlp": (models.rgb_mlp(pre, hidden=32).eval(), info("rgb", RGB)),
        "rgb_encoder": (models.rgb_encoder(pre).eval(), info("rgb", RGB)),
        "ae_rgb": (rgb_ae, info("rgb", RGB)),
        "ae_trust": (trust, info("trust", ["reconstruction_error"])),
    }


def check_bundle(bundle, model, inf, x, p) -> None:
    assert p.ok and p.spectra == len(x) >= 1000
    s = ModelSession(bundle.folder, threads=2)
    got = s.run(x)
    want = reference(model, inf, x)
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())
    m = s.manifest
    assert m.kind == inf["kind"] and m.grid == GRID and list(m.outputs) == list(inf["outputs"])
    assert m.metrics["parity"]["spectra"] == len(x) and m.metrics["r2"] == 0.5
    assert bundle.model_path.stat().st_size < graph.MAX_BYTES
    meta = s._session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["maxrf.grid"]) == GRID.to_dict() and meta["maxrf.kind"] == m.kind


@pytest.mark.parametrize("name", ["element_mlp", "element_cnn", "rgb_mlp", "rgb_encoder",
                                  "ae_rgb", "ae_trust"])
def test_torch_round_trip(data, tmp_path, name) -> None:
    pre, _, _, y8, test = data
    model, inf = trained_torch(pre, y8)[name]
    bundle, p = export_model(model, inf, tmp_path / name, test, "synthetic", name)
    check_bundle(bundle, model, inf, test, p)
    assert bundle.manifest.training["framework"] == "torch"
    if name == "ae_trust":
        assert (ModelSession(bundle.folder).run(test) >= 0).all()


@pytest.mark.parametrize("name", ["lasso", "knn", "svr", "svr_linear"])
def test_sklearn_round_trip(data, tmp_path, name) -> None:
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.svm import SVR

    pre, train, y3, y8, test = data
    est = {"lasso": models.lasso(0.05), "knn": models.knn(), "svr": models.svr(),
           "svr_linear": MultiOutputRegressor(SVR(kernel="linear", C=0.1))}[name]
    rgb = name.startswith("svr")
    est.fit(pre(train), y3 if rgb else y8)
    inf = info("rgb" if rgb else "elements", RGB if rgb else ELEMENTS, preprocess=pre.to_dict())
    bundle, p = export_model(est, inf, tmp_path / name, test, "synthetic", name)
    check_bundle(bundle, est, inf, test, p)
    assert bundle.manifest.training["framework"] == "sklearn"
    ops = {n.op_type for n in onnx.load(bundle.model_path).graph.node}
    # our graphs for RBF SVR and uniform kNN; skl2onnx's SVMRegressor for the linear SVR
    assert ("SVMRegressor" in ops) == (name == "svr_linear")
    assert ("Exp" in ops) == (name == "svr") and ("TopK" in ops) == (name == "knn")


def test_parity_failure_prints_the_worst_case(data, tmp_path) -> None:
    pre, _, _, y8, test = data
    model, inf = trained_torch(pre, y8)["element_mlp"]
    onx = graph.finalize(convert(model, inf)[0])
    want = reference(model, inf, test)
    want[17, 3] += 0.01 * np.abs(want[:, 3]).max()  # 100x the absolute floor
    with pytest.raises(parity.ParityError, match="worst case: spectrum 17, output 'Cu'"):
        parity.check(onx, want, test, ELEMENTS)
    with pytest.raises(parity.ParityError, match=">= 1000 held-out spectra"):
        parity.check(onx, want[:10], test[:10], ELEMENTS)


def test_oversized_graph_is_refused(data, monkeypatch) -> None:
    pre, _, _, y8, _ = data
    from export.torch_export import torch_to_onnx

    onx = torch_to_onnx(models.element_mlp(pre, y8.std(0), hidden=32), GRID.channels, "e")
    monkeypatch.setattr(graph, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="over the 0 MiB bundle limit"):
        graph.finalize(onx)


def test_heldout_falls_back_to_synthetic(tmp_path) -> None:
    x, source = heldout({"kind": "rgb", "train_data": {}}, GRID, tmp_path, n=1000)
    assert len(x) >= 1000 and "synthetic" in source and x.dtype == np.float32


def test_cli_default_writes_three_bundles(data, tmp_path, capsys) -> None:
    pre, _, _, y8, _ = data
    trained = tmp_path / "trained"
    torch_models = trained_torch(pre, y8)
    artifacts.save("rgb", *torch_models["rgb_mlp"], root=trained)
    artifacts.save("elements", *torch_models["element_mlp"], root=trained)
    artifacts.save("trust", *torch_models["ae_trust"], root=trained)
    out = tmp_path / "models"
    assert export_main(["default", "--trained", str(trained), "--out", str(out),
                        "--data", str(tmp_path / "no_data")]) == 0
    printed = capsys.readouterr().out
    for kind in ("rgb", "elements", "trust"):
        b = load_bundle(out / kind)
        assert b.manifest.kind == kind
        assert f"{kind}: {out / kind}" in printed
        assert json.loads((out / kind / "manifest.json").read_text())["metrics"]["parity"]
    assert printed.count("worst/tolerance") == 3 and "FAIL" not in printed


def test_cli_reports_a_missing_model(tmp_path, capsys) -> None:
    args = ["model", "nothing", "--trained", str(tmp_path), "--out", str(tmp_path)]
    assert export_main(args) == 1
    assert "nothing: export FAILED: no trained model" in capsys.readouterr().err


def test_knn_in_double(data) -> None:
    from export.sklearn_export import sklearn_predict, sklearn_to_onnx

    pre, train, _, y8, test = data
    est = models.knn(5).fit(pre(train), y8)
    onx = sklearn_to_onnx(est, pre.to_dict(), "elements", 8, double=True)
    assert any(n.name == "knn_cast" for n in onx.graph.node)
    p = parity.check(graph.finalize(onx), sklearn_predict(est, pre.to_dict(), test), test,
                     ELEMENTS)
    assert p.ok


def test_distance_weighted_knn_through_skl2onnx_is_caught_by_parity(data, tmp_path) -> None:
    """Known: skl2onnx's float32 distance-weighted kNN disagrees with scikit-learn (weights
    1/d amplify float32 distance error); export must refuse it and write nothing."""
    pre, train, _, y8, test = data
    est = models.knn(5).set_params(weights="distance").fit(pre(train), y8)
    inf = info("elements", ELEMENTS, preprocess=pre.to_dict())
    with pytest.raises(parity.ParityError, match="worst case"):
        export_model(est, inf, tmp_path / "knn_d", test, "synthetic")
    assert not (tmp_path / "knn_d").exists()


def test_knn_over_the_size_limit_is_refused(data, monkeypatch) -> None:
    from export.sklearn_export import sklearn_to_onnx

    pre, train, _, y8, _ = data
    est = models.knn().fit(pre(train), y8)
    monkeypatch.setattr(graph, "MAX_BYTES", 10_000)
    with pytest.raises(ValueError, match=r"kNN holds 300 training spectra .* subsample"):
        sklearn_to_onnx(est, pre.to_dict(), "elements", 8)
