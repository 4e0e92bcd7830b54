"""The rebinning contract: counts conserved, identity exact, edges honoured."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proto.energy import EnergyGrid, Rebinner, counts_per_live_second, rebin

M6 = EnergyGrid(-0.9555, 0.009999, 4096)
MODEL = EnergyGrid(0.01, 0.02, 1024)


def test_identity_is_exact() -> None:
    counts = np.random.default_rng(0).poisson(3, (5, 4096)).astype(np.uint32)
    assert np.array_equal(rebin(counts, M6, M6), counts.astype(np.float32))


def test_counts_inside_target_range_are_conserved() -> None:
    counts = np.random.default_rng(1).poisson(4, (8, 4096)).astype(np.uint32)
    inside = (M6.centres() > MODEL.low + M6.gain) & (M6.centres() < MODEL.high - M6.gain)
    counts[:, ~inside] = 0
    assert np.allclose(Rebinner(M6, MODEL)(counts).sum(axis=1), counts.sum(axis=1), rtol=1e-6)


def test_peak_stays_at_its_energy() -> None:
    counts = np.zeros(4096, dtype=np.uint32)
    counts[round(M6.channel(6.404))] = 1000  # Fe K-alpha
    out = rebin(counts, M6, MODEL)
    assert abs(MODEL.centres()[np.argmax(out)] - 6.404) <= MODEL.gain


def test_integer_factor_is_a_plain_sum() -> None:
    fine = EnergyGrid(0.0, 0.01, 8)
    coarse = EnergyGrid(0.005, 0.02, 4)
    counts = np.arange(8, dtype=np.float32)
    assert np.allclose(rebin(counts, fine, coarse), counts.reshape(4, 2).sum(axis=1))


def test_out_of_range_target_gets_nothing() -> None:
    assert rebin(np.ones(10), EnergyGrid(0, 1, 10), EnergyGrid(20, 1, 5)).sum() == 0


def test_wrong_channel_count_is_refused() -> None:
    with pytest.raises(ValueError, match="4000 channels"):
        Rebinner(M6, MODEL)(np.zeros((2, 4000)))


def test_grid_validation_and_coverage() -> None:
    with pytest.raises(ValueError):
        EnergyGrid(0.0, 0.0, 10)
    assert M6.covers(MODEL) and not MODEL.covers(M6)
    assert EnergyGrid.from_dict(M6.to_dict()) == M6


def test_counts_per_live_second_divides_each_pixel() -> None:
    counts = np.full((2, 4096), 2, dtype=np.uint16)
    rates = counts_per_live_second(counts, np.array([0.5, 2.0]), Rebinner(M6, M6))
    assert np.allclose(rates[0], 4.0) and np.allclose(rates[1], 1.0)
    with pytest.raises(ValueError, match="live time"):
        counts_per_live_second(counts, np.array([0.0, 1.0]), Rebinner(M6, M6))


@settings(max_examples=60, deadline=None)
@given(
    offset=st.floats(-1.0, 1.0),
    gain=st.floats(0.003, 0.05),
    factor=st.floats(0.3, 4.0),
    seed=st.integers(0, 2**16),
)
def test_total_is_conserved_when_target_covers_source(
    offset: float, gain: float, factor: float, seed: int
) -> None:
    source = EnergyGrid(offset, gain, 200)
    target_gain = gain * factor
    channels = int((source.high - source.low) / target_gain) + 3
    target = EnergyGrid(source.low, target_gain, channels)
    counts = np.random.default_rng(seed).poisson(5, 200).astype(np.float64)
    assert target.covers(source)
    assert np.isclose(rebin(counts, source, target).sum(), counts.sum(), rtol=1e-5)


def cumulative_rebin(counts: np.ndarray, source: EnergyGrid, target: EnergyGrid) -> np.ndarray:
    """The definition: target counts are differences of the source's cumulative counts,
    read at each target edge by linear interpolation inside the source channel."""
    cumulative = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    return np.diff(np.interp(target.edges(), source.edges(), cumulative))


@settings(max_examples=60, deadline=None)
@given(
    offset=st.floats(-1.5, 1.5),
    gain=st.floats(0.002, 0.08),
    channels=st.integers(5, 2000),
    seed=st.integers(0, 2**16),
)
def test_banded_map_equals_the_cumulative_definition(
    offset: float, gain: float, channels: int, seed: int
) -> None:
    counts = np.random.default_rng(seed).poisson(30, (3, M6.channels)).astype(np.uint32)
    target = EnergyGrid(offset, gain, channels)
    got = Rebinner(M6, target)(counts)
    want = np.stack([cumulative_rebin(c, M6, target) for c in counts])
    assert np.allclose(got, want, rtol=1e-5, atol=1e-3)
