"""Preprocessing, model shapes, artifacts round trip, ROI, and a tiny synthetic training."""

import numpy as np
import pytest
import torch

from proto.elements import ELEMENTS
from training import artifacts, models, train
from training.metrics import element_errors, r2_rgb
from training.preprocess import MODEL_GRID, Preprocess
from training.roi import RoiModel, line_energy, roi_sums

E = MODEL_GRID.centres()


def peak(energy_kev, fwhm=0.15):
    s = fwhm / 2.355
    return np.exp(-0.5 * ((E - energy_kev) / s) ** 2) * MODEL_GRID.gain / (s * np.sqrt(2 * np.pi))


def synthetic(n=600, seed=0, dwell=0.1):
    """Spectra (counts/s, Poisson at `dwell`) of random mixtures of three 'pigments'
    with known element rates and colours; returns rates, element maps, rgb."""
    rng = np.random.default_rng(seed)
    lines = np.stack([peak(line_energy(el)) for el in ELEMENTS])  # (8, D), one count each
    pig_el = np.zeros((3, 8))
    pig_el[0, ELEMENTS.index("Pb")] = 800  # lead white
    pig_el[1, ELEMENTS.index("Hg")] = 500  # vermilion
    pig_el[2, ELEMENTS.index("Cu")] = 600  # azurite
    pig_rgb = np.array([[0.95, 0.93, 0.88], [0.80, 0.15, 0.10], [0.15, 0.30, 0.75]])
    w = rng.dirichlet(np.ones(3) * 0.5, n)
    el = w @ pig_el
    continuum = 20 * np.exp(-E / 8) * (E > 1)
    expected = el @ lines + continuum
    rates = rng.poisson(expected * dwell) / dwell
    return rates.astype(np.float32), el.astype(np.float32), (w @ pig_rgb).astype(np.float32)


def test_preprocess_numpy_and_torch_agree_and_round_trip():
    rates, _, _ = synthetic(200)
    pre = Preprocess.fit(rates)
    f = pre(rates)
    assert f.shape == (200, 1024) and f.dtype == np.float32
    assert np.allclose(f.mean(axis=0), 0, atol=1e-4)  # centred per channel
    assert f.std() == pytest.approx(1.0, rel=1e-3)  # one global scale
    assert np.all(pre.scale == pre.scale[0])
    t = pre.module()(torch.from_numpy(rates)).numpy()
    np.testing.assert_allclose(t, f, rtol=1e-5, atol=1e-5)
    again = Preprocess.from_dict(pre.to_dict())
    np.testing.assert_array_equal(again(rates), f)
    assert np.isfinite(pre(-rates)).all()  # negative input is clipped, never NaN


def test_model_shapes():
    rates, el, _ = synthetic(32)
    pre = Preprocess.fit(rates)
    x = torch.from_numpy(rates)
    scale = train.element_scale(el)
    assert models.rgb_mlp(pre)(x).shape == (32, 3)
    assert models.rgb_encoder(pre)(x).shape == (32, 3)
    assert models.element_mlp(pre, scale)(x).shape == (32, 8)
    assert models.element_cnn(pre, scale)(x).shape == (32, 8)
    ae = models.AutoEncoder()
    z, rec = ae(pre.module()(x))
    assert z.shape == (32, 3) and rec.shape == (32, 1024)
    linears = [m for m in ae.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 10  # 5 down + 5 up, as in the study
    s = models.TrustScore(pre.module(), ae)(x)
    assert s.shape == (32, 1) and bool((s >= 0).all())


def test_artifacts_round_trip(tmp_path):
    rates, el, rgb = synthetic(64)
    pre = Preprocess.fit(rates)
    net = models.element_mlp(pre, train.element_scale(el))
    info = train.element_info("synthetic", "none", 64, {"x": 1.0})
    artifacts.save("el", net, info, tmp_path)
    back, binfo = artifacts.load("el", tmp_path)
    x = torch.from_numpy(rates)
    with torch.no_grad():
        np.testing.assert_array_equal(back(x).numpy(), net.eval()(x).numpy())
    assert binfo["kind"] == "elements" and binfo["framework"] == "torch"
    assert binfo["outputs"] == list(ELEMENTS)
    knn = models.knn().fit(pre(rates), rgb)
    artifacts.save("knn", knn, {**train.rgb_info(train.Scene("s", tmp_path, (8, 8), rates, 0.1),
                                                 {}, pre)}, tmp_path)
    kback, kinfo = artifacts.load("knn", tmp_path)
    pre2 = Preprocess.from_dict(kinfo["preprocess"])
    np.testing.assert_allclose(kback.predict(pre2(rates)), knn.predict(pre(rates)))
    with pytest.raises(ValueError):
        artifacts.save("bad", knn, {"kind": "rgb"}, tmp_path)
    assert artifacts.available(tmp_path) == ["el", "knn"]


def test_roi_finds_isolated_lines_and_confuses_overlaps():
    rates, el, _ = synthetic(300, dwell=10.0)
    roi = RoiModel().fit(rates, el)
    pred = roi.predict(rates)
    cu = ELEMENTS.index("Cu")
    assert element_errors(el[:, cu], pred[:, cu])["rel_rmse"] < 0.05
    # As has no signal here but sits on Pb L-alpha: ROI reports As wherever Pb is
    raw = roi_sums(rates)
    pb, as_ = ELEMENTS.index("Pb"), ELEMENTS.index("As")
    assert np.corrcoef(raw[:, as_], el[:, pb])[0, 1] > 0.9


def test_tiny_training_reaches_stated_accuracy():
    """Synthetic mixtures: RGB MLP R² >= 0.9 and linear+MLP element model relative RMSE
    <= 0.2 on held-out spectra (the Poisson limit here is ~0.05-0.1), in a few seconds."""
    train.setup()
    rates, el, rgb = synthetic(4000, seed=1, dwell=1.0)
    test_rates, test_el, test_rgb = synthetic(400, seed=2, dwell=1.0)
    pre = Preprocess.fit(rates)
    net = models.rgb_mlp(pre, hidden=64)
    train.train_rgb_net(net, pre(rates), rgb, "test rgb", epochs=5)
    assert r2_rgb(test_rgb, train.predict(net, test_rates)) >= 0.9
    net = models.element_linmlp(pre, train.element_scale(el), train.rate_scale(rates), 64)
    train.train_element_net(net, rates, el, epochs=20, desc="test el", augment=False)
    pred = train.predict(net, test_rates)
    for name in ("Cu", "Hg", "Pb"):
        j = ELEMENTS.index(name)
        assert element_errors(test_el[:, j], pred[:, j])["rel_rmse"] <= 0.2, name


def test_fit_linear_recovers_a_linear_truth_and_freezes_it():
    """Maps that are exactly linear in counts/s: the closed-form branch alone reproduces them
    (the MLP's output weights zeroed), and training leaves that branch untouched."""
    rng = np.random.default_rng(4)
    rates = rng.gamma(2.0, 50.0, (3000, MODEL_GRID.channels)).astype(np.float32)
    w_true = rng.normal(0, 1, (MODEL_GRID.channels, 8))
    y = (rates @ w_true / 100 + 500 + rng.normal(0, 1e-3, (3000, 8))).astype(np.float32)
    pre = Preprocess.fit(rates)
    net = models.element_linmlp(pre, train.element_scale(y), train.rate_scale(rates), 16)
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    train.fit_linear(net, rates, y, ridge=1e-9)
    pred = train.predict(net, rates)
    assert np.abs(pred - y).max() < 1e-3 * np.abs(y).max()
    before = net.linear.weight.detach().clone()
    train.train_element_net(net, rates, y, epochs=1, desc="frozen linear")
    assert torch.equal(net.linear.weight, before)
