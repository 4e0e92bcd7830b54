"""Scenes: palette chemistry and colours, paintings' ground truth, tiny named scenes."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from proto.dataset import open_dataset
from proto.elements import ELEMENTS
from training import paintings, pigments, scenes


# ------------------------------------------------------------------ simulator
@pytest.fixture(scope="module")
def sim():
    """The simulator the scenes run (tests that simulate take it, so they read as such)."""
    from training import sim as real

    return real


@pytest.fixture(scope="module")
def child(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    return scenes.make_scene("m1_child", out, tiny=True, progress=False)


# ------------------------------------------------------------------ palette
def test_palette_covers_science_md_and_chemistry_is_right():
    needed = {"lead_white", "red_lead", "vermilion", "yellow_ochre", "red_ochre", "raw_umber",
              "orpiment", "azurite", "malachite", "verdigris", "smalt", "prussian_blue",
              "gold", "red_bole", "gypsum", "chalk", "bone_black", "red_lake"}
    assert needed <= set(pigments.PALETTE)
    for p in pigments.PALETTE.values():
        assert sum(p.mass_fractions.values()) == pytest.approx(1.0)
        assert all(0 <= c <= 1 for c in p.srgb)
    assert pigments.PALETTE["lead_white"].mass_fractions["Pb"] == pytest.approx(0.801, abs=0.002)
    assert pigments.PALETTE["vermilion"].mass_fractions["Hg"] == pytest.approx(0.862, abs=0.002)
    smalt = pigments.PALETTE["smalt"].mass_fractions
    assert {"Co", "As", "K"} <= set(smalt)
    lake = pigments.PALETTE["red_lake"].mass_fractions
    assert not (set(lake) & (set(ELEMENTS) - {"Ca"}))  # no XRF signature but its substrate


def test_paint_mixing_is_subtractive_and_layers_sum_to_one():
    verm = np.array(pigments.paint("v", {"vermilion": 1}).srgb)
    pink = np.array(pigments.paint("p", {"vermilion": 0.3, "lead_white": 0.7}).srgb)
    assert pink.mean() > verm.mean() and pink[0] > pink[1]  # lighter, still red
    layer = pigments.paint("x", {"orpiment": 0.5, "lead_white": 0.5}, thickness_um=20)
    assert sum(layer.composition.values()) == pytest.approx(1.0)
    assert layer.composition["As"] > 0.05 and layer.composition["Pb"] > 0.2
    assert 1.0 < layer.density < 6.7


def test_alterations_change_the_photograph_not_the_original():
    lake = pigments.paint("lake", {"red_lake": 1}, thickness_um=10, opacity=0.6)
    base = paintings.Stack("s", (pigments.varnish(), lake,
                                 pigments.paint("w", {"lead_white": 1}), pigments.ground()))
    faded = replace(base, aged=frozenset({"fade"}))
    dark = replace(base, aged=frozenset({"darken"}))
    over = paintings._apply(base, paintings.Alteration(
        "overpaint", (0, 0), (1, 1), pigments.paint("o", {"azurite": 1})))
    orig = base.colour_linear(original=True)
    np.testing.assert_allclose(faded.colour_linear(original=True), orig)
    np.testing.assert_allclose(over.colour_linear(original=True), orig)
    assert faded.colour_linear(original=False).mean() > orig.mean()  # pale
    d = dark.colour_linear(original=False)
    assert d.mean() < orig.mean() and d[2] / d[0] < orig[2] / orig[0]  # darker, yellower
    o = over.colour_linear(original=False)
    assert o[2] > o[0]  # the photo shows the blue over-paint
    assert faded.faded and dark.darkened and over.overpainted and not base.faded


def test_spot_blur_mixes_neighbouring_stacks():
    spec = scenes.panel_specs(scenes.SCENES["m1_virgin"])[0]
    r = paintings.render(spec, 20, 14, ss=3)
    sharp = paintings.pixel_truth(r, spot_px=0.05)
    blurred = paintings.pixel_truth(r, spot_px=3.0)
    for t in (sharp, blurred):
        np.testing.assert_allclose(t.weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (blurred.weights.max(axis=1) < 0.9).sum() > (sharp.weights.max(axis=1) < 0.9).sum()
    np.testing.assert_array_equal(sharp.photo_rgb, blurred.photo_rgb)  # colours not blurred
    assert len(r.stacks) < 40


# ------------------------------------------------------------------ scenes
def test_tiny_child_has_ground_truth_masks_and_lies(child):
    with open_dataset(child, verify=True) as ds:
        h, w, _ = ds.shape
        assert (h, w) == (16, 12) and h * w <= 24 * 24
        assert ds.scan["scene"] == "m1_child" and ds.scan["beam_spot_um"] == 2000
        maps = ds.element_maps
        assert maps is not None and set(maps) == set(ELEMENTS)
        assert all(np.all(m >= 0) for m in maps.values())
        assert maps["Hg"].max() > 0 and maps["Au"].max() > 0 and maps["Pb"].max() > 0
        photo, orig = ds.photo_rgb.astype(int), ds.original_rgb.astype(int)
        assert ds.pigments.max() < len(ds.pigment_names)
        assert (ds.live_time_s > 0).all() and (ds.live_time_s <= ds.real_time_s + 1e-6).all()
        total = ds.counts[...].sum()
        masks = ds.masks
    assert set(masks) == set(paintings.MASK_NAMES)
    for k in ("faded", "overpaint", "novel", "darkened_varnish"):
        assert masks[k].any(), k
    altered = masks["faded"] | masks["overpaint"] | masks["darkened_varnish"]
    diff = np.abs(photo - orig).sum(axis=2)
    assert diff[masks["faded"]].mean() > 30 and diff[masks["overpaint"]].mean() > 30
    assert (diff[~altered] <= 3).mean() > 0.8  # only pixels partly altered differ
    assert total > 0


def test_scenes_are_deterministic_and_tiny_versions_are_small(sim, tmp_path):
    digests = []
    for run in range(2):
        p = scenes.make_scene("m6_corpus", tmp_path / str(run), tiny=True, progress=False,
                              png=run == 0)
        with open_dataset(p) as ds:
            assert ds.shape[:2] == (24, 24)
            assert len(ds.scan["panels"]) == 4
            digests.append(hashlib.sha256(ds.counts[...].tobytes()).hexdigest())
    assert digests[0] == digests[1]
    assert (tmp_path / "0" / "m6_corpus_tiny.png").stat().st_size > 10_000


def test_dwell_parameter_scales_counts(sim, tmp_path):
    a = scenes.make_scene("m6_ioannis", tmp_path / "a", tiny=True, progress=False, png=False)
    b = scenes.make_scene("m6_ioannis_100ms", tmp_path / "b", tiny=True, progress=False,
                          png=False)
    with open_dataset(a) as da, open_dataset(b) as db:
        assert da.shape == db.shape and da.shape[:2] == (24, 18)
        assert db.scan["dwell_s"] == pytest.approx(10 * da.scan["dwell_s"])
        ratio = db.counts[...].sum() / da.counts[...].sum()
        np.testing.assert_allclose(da.element_maps["As"], db.element_maps["As"])
        # As with Pb, Au with Hg, As with Hg: the overlap cases are in the held-out panel
        m = da.element_maps
        assert ((m["As"] > 0) & (m["Pb"] > 0)).any() and ((m["Au"] > 0) & (m["Hg"] > 0)).any()
        assert ((m["As"] > 0) & (m["Hg"] > 0)).any()
    assert 8 < ratio < 12


def test_child_has_exactly_one_pigment_the_virgin_lacks():
    def used(name):
        spec = scenes.panel_specs(scenes.SCENES[name])[0]
        layers = [la for role in spec.palette.values() for la in role]
        layers += [a.layer for a in spec.alterations if a.layer is not None]
        return {p for la in layers for p in la.pigments}

    assert used("m1_child") - used("m1_virgin") == {"smalt"}


def test_unknown_scene_is_refused(tmp_path):
    with pytest.raises(KeyError, match="unknown scene"):
        scenes.make_scene("nope", tmp_path)
