"""Metrics on inputs with known answers: CIEDE2000 against Sharma et al. 2005, R², errors."""

import numpy as np
import pytest

from training.metrics import (
    auroc,
    ciede2000,
    delta_e_rgb,
    element_errors,
    r2_rgb,
    srgb_to_lab,
)

# Table 1 of Sharma, Wu & Dalal, Color Res. Appl. 30(1) 2005: (Lab1, Lab2, dE00).
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_all_34_published_pairs():
    assert len(SHARMA_PAIRS) == 34
    lab1 = np.array([p[0] for p in SHARMA_PAIRS])
    lab2 = np.array([p[1] for p in SHARMA_PAIRS])
    want = np.array([p[2] for p in SHARMA_PAIRS])
    got = ciede2000(lab1, lab2)  # vectorised over all pairs at once
    np.testing.assert_allclose(got, want, atol=5e-5)  # the table prints four decimals
    np.testing.assert_allclose(ciede2000(lab2, lab1), got, atol=1e-12)  # symmetric
    assert np.all(ciede2000(lab1, lab1) == 0)


def test_srgb_to_lab_known_colours():
    lab = srgb_to_lab(np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(lab[1], [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)
    assert delta_e_rgb(np.array([0.2, 0.4, 0.6]), np.array([0.2, 0.4, 0.6])) == 0


def test_r2_rgb_known_values():
    rng = np.random.default_rng(0)
    truth = rng.random((100, 3))
    assert r2_rgb(truth, truth) == pytest.approx(1.0)
    assert r2_rgb(truth, np.broadcast_to(truth.mean(axis=0), truth.shape)) == pytest.approx(0.0)
    # uniform average: perfect on R and G, mean on B -> 2/3
    pred = truth.copy()
    pred[:, 2] = truth[:, 2].mean()
    assert r2_rgb(truth, pred) == pytest.approx(2 / 3)


def test_element_errors_and_auroc():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = element_errors(t, t + 0.5)
    assert e["rmse"] == pytest.approx(0.5)
    assert e["rel_rmse"] == pytest.approx(0.5 / 2.5)
    assert e["pearson_r"] == pytest.approx(1.0)
    assert element_errors(t, -t)["pearson_r"] == pytest.approx(-1.0)
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
