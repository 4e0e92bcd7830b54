"""`edge watch` panels follow the live view's scaling (issue 15 item 3): zero-based,
negatives clipped, readable line scans and 1 x 1 scans, a scale bar in mm."""

from __future__ import annotations

import numpy as np

from edge import png

TOP = 22  # first image row of a panel (below the title)


def _map(lo: float = 2150.0, hi: float = 3040.0) -> np.ndarray:
    return np.linspace(lo, hi, 20 * 30).reshape(20, 30)


def test_zero_based_black_is_zero_not_the_minimum():
    m = _map()
    assert png.scale_range(m) == (0.0, 3040.0)
    p = png.panel(m, "Ca", units="c/s")
    # the darkest pixel (2150 c/s) is 2150/3040 up the colour table, not its bottom
    want = png.LUT[int(2150 / 3040 * 255)]
    np.testing.assert_array_equal(p[TOP, 2], want)
    assert not (p[TOP:TOP + 20, 2:100] == png.LUT[0]).all(axis=2).any()


def test_percentile_scaling_is_optional():
    lo, hi = png.scale_range(_map(), "percentile")
    assert 2150 < lo < 2200 and 2990 < hi < 3040


def test_negatives_clipped_and_said():
    m = _map(-500.0, 1000.0)
    img, lo, hi = png.colourise(m)
    assert (lo, hi) == (0.0, 1000.0)
    neg = m < 0
    assert (img[neg] == png.LUT[0]).all()  # every negative is drawn as 0, not below it
    captioned = png.panel(m, "Fe", units="c/s")
    plain = png.panel(_map(0.0, 1000.0), "Fe", units="c/s")
    assert captioned.shape[0] > plain.shape[0] - 1  # the caption line "negatives shown as 0"
    assert not np.array_equal(captioned[-12:], plain[-12:])


def test_colour_bar_ticks_are_round_and_apart():
    assert png.nice_ticks(0, 3040) == [0, 1000, 2000, 3000]
    assert png.fmt_value(3000) == "3.0k" and png.fmt_value(0) == "0"


def test_line_scan_1_x_5000_is_readable():
    p = png.panel(np.random.default_rng(0).random((1, 5000)) * 100, "Fe", units="c/s")
    img, _, _, notes = png.fit(np.zeros((1, 5000, 3), np.uint8), 192)
    assert img.shape[0] >= png.MIN_SHORT and img.shape[1] <= 200
    assert any("stretched" in n for n in notes)
    assert p.shape[0] >= png.BAR_MIN and p.shape[1] < 400
    rgb = png.upscale(np.zeros((1, 5000, 3), np.uint8), 384)
    assert rgb.shape == (png.MIN_SHORT, 5000, 3)


def test_tiny_scan_1_x_1_is_a_block_with_a_zero_based_bar():
    assert png.scale_range(np.full((1, 1), 5.0)) == (0.0, 5.0)
    assert png.scale_range(np.zeros((1, 1))) == (0.0, 1.0)
    p = png.panel(np.full((1, 1), 5.0), "Zn", units="c/s")
    block = p[TOP:TOP + 192, 2:194]
    assert (block == png.LUT[255]).all()  # a visible block at the top of the scale
    assert png.upscale(np.zeros((1, 1, 3), np.uint8), 384).shape == (384, 384, 3)


def test_scale_bar_when_pixel_size_known():
    m = _map()
    with_bar = png.panel(m, "Ca", units="c/s", pixel_size_um=100.0)
    without = png.panel(m, "Ca", units="c/s")
    assert with_bar.shape[0] == without.shape[0] + 12
    # 30 px at 100 um shown 6x wide: 0.0167 mm per shown pixel; 1 mm is 60 px
    assert png.scale_bar(0.1 / 6, 72) == (60, "1 mm")
    row = with_bar[TOP + 120 + 4 + 3, :]  # the map is shown 120 px high; bar below it
    white = np.flatnonzero((row == 255).all(axis=1))
    assert white.min() == 2 and white.max() - white.min() + 1 >= 60
