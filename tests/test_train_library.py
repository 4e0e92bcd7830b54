"""The simulated pigment library: deterministic, physical, and covering the whole palette."""

import numpy as np
import pytest

from training import library, sim
from training.pigments import PALETTE
from training.preprocess import MODEL_GRID

SMALL = library.LibraryConfig(stacks=30, pixels=200, seed=3)


@pytest.fixture(scope="module")
def lib() -> library.Library:
    return library.build(sim.M1_MISTRAL, 1.0, SMALL, progress=False)


def test_shapes_ranges_and_determinism(lib):
    assert lib.rates.shape == (SMALL.pixels, MODEL_GRID.channels)
    assert lib.rgb.shape == (SMALL.pixels, 3)
    assert np.isfinite(lib.rates).all() and (lib.rates >= 0).all()
    assert lib.rgb.min() >= 0 and lib.rgb.max() <= 1
    again = library.build(sim.M1_MISTRAL, 1.0, SMALL, progress=False)
    np.testing.assert_array_equal(again.rates, lib.rates)
    np.testing.assert_array_equal(again.rgb, lib.rgb)


def test_stacks_follow_the_craft_and_cover_the_palette():
    rng = np.random.default_rng(0)
    stacks = [library.random_stack(i, rng, library.LibraryConfig()) for i in range(300)]
    for s in stacks:
        assert s.layers[0].name == "varnish" and s.layers[-1].name == "gesso"
    seen = set().union(*(s.pigments for s in stacks))
    assert set(library.PAINTS) <= seen
    assert "gold" in seen and "red_lake" in seen  # gilding and glazes too
    assert set(library.PAINTS) | library.NOT_PAINT == set(PALETTE)


def test_colour_follows_the_paint():
    """A pure-vermilion pixel is red, a pure-azurite one blue: targets are the paint's look."""
    cfg = library.LibraryConfig(max_pigments=1, p_glaze=0, p_underpaint=0, p_gold_lines=0,
                                p_gilding=0)
    rng = np.random.default_rng(1)
    looks = {}
    for i in range(60):
        s = library.random_stack(i, rng, cfg)
        (pigment,) = s.layers[1].pigments
        looks[pigment] = s.colour_linear(original=True)
    assert looks["vermilion"][0] > 2 * looks["vermilion"][2]
    assert looks["azurite"][2] > 2 * looks["azurite"][0]


def test_instrument_record_round_trip():
    inst = sim.M1_MISTRAL.with_(spot_um=2000.0)
    assert sim.Instrument.from_dict(inst.to_dict()) == inst
    with pytest.raises(ValueError, match="missing"):
        sim.Instrument.from_dict({"name": "M1 Mistral"})
