"""Counting model: Poisson means, dead time, pile-up sum peaks, dtypes."""

import numpy as np
import pytest

from training.sim import M6_JETSTREAM, Layer, acquire, stack_response
from training.sim.acquire import live_time, pileup_spectrum


def _line_rates(energy_kev: float, rate: float) -> np.ndarray:
    grid = M6_JETSTREAM.grid
    rates = np.zeros(grid.channels)
    rates[round(grid.channel(energy_kev))] = rate
    return rates


def test_poisson_mean_matches_rates_times_live():
    rates = np.full((2000, M6_JETSTREAM.grid.channels), 0.5)
    acq = acquire(rates, 0.1, np.random.default_rng(1), M6_JETSTREAM, pileup=False)
    expected = 0.5 * acq.live_time_s[0]
    assert acq.counts.mean() == pytest.approx(expected, rel=0.01)
    assert acq.counts.var() == pytest.approx(expected, rel=0.03)  # Poisson: var = mean
    assert acq.counts.dtype == np.uint16
    assert acq.counts.shape == rates.shape


def test_dead_time_live_below_real_at_high_rates():
    low = _line_rates(6.4, 100.0)[None]
    high = _line_rates(6.4, 3e5)[None]
    rng = np.random.default_rng(2)
    a_low = acquire(low, 1.0, rng, M6_JETSTREAM)
    a_high = acquire(high, 1.0, rng, M6_JETSTREAM)
    assert a_low.live_time_s[0] == pytest.approx(1.0, rel=1e-3)
    assert a_high.live_time_s[0] < 0.7 * a_high.real_time_s[0]
    assert np.all(live_time(np.ones(3), np.array([0, 1e4, 1e6]), M6_JETSTREAM) <= 1.0)
    # per-pixel dwell arrays are honoured
    a = acquire(np.vstack([low, low]), np.array([0.01, 0.02]), rng, M6_JETSTREAM)
    assert np.allclose(a.real_time_s, [0.01, 0.02])


def test_pileup_sum_peak_at_twice_the_energy():
    grid = M6_JETSTREAM.grid
    rate = 1e5
    piled = pileup_spectrum(_line_rates(6.4, rate)[None], M6_JETSTREAM)[0]
    sum_channel = grid.channel(12.8)
    near = np.abs(np.arange(grid.channels) - sum_channel) <= 1.5
    t_pp = M6_JETSTREAM.pulse_pair_s
    assert piled[near].sum() == pytest.approx(t_pp * rate**2, rel=1e-6)
    # each pile-up event turns two photons into one count
    assert piled.sum() == pytest.approx(rate - t_pp * rate**2, rel=1e-9)


def test_acquire_of_a_painting_pixel():
    resp = stack_response(M6_JETSTREAM, [Layer("HgS", 8.1, 20e-4), Layer("CaCO3", 2.0, 0.05)])
    rates = np.repeat(resp.rates[None], 64, axis=0)
    acq = acquire(rates, 0.01, np.random.default_rng(3), M6_JETSTREAM)
    total = acq.counts.sum(axis=1).mean()
    assert total == pytest.approx(resp.total_rate * acq.live_time_s.mean(), rel=0.05)
    assert np.all(acq.live_time_s < acq.real_time_s)
    with pytest.raises(ValueError):
        acquire(rates[:, :10], 0.01, np.random.default_rng(3), M6_JETSTREAM)
