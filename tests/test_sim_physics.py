"""Simulator physics: line positions, detector width, escape peaks, absorption, rates."""

import time

import numpy as np
import pytest
import xraylib

from proto.elements import ELEMENTS
from training.sim import (
    M1_MISTRAL,
    M6_JETSTREAM,
    Layer,
    detector,
    mix_compositions,
    stack_response,
    tube,
)
from training.sim.compare_real import fit_peak

CHALK = Layer("CaCO3", 2.0, 0.05)
LEAD_WHITE = Layer("Pb3(CO3)2(OH)2", 6.1, 20e-4)


def test_layer_compositions_are_mass_fractions():
    gypsum = Layer("CaSO4(H2O)2", 2.3, 0.01)
    assert sum(gypsum.composition.values()) == pytest.approx(1.0)
    assert gypsum.composition["Ca"] == pytest.approx(40.078 / 172.17, rel=1e-3)
    mixed = mix_compositions([("HgS", 0.5), ({"Fe": 1.0}, 0.5)])
    assert mixed["Fe"] == pytest.approx(0.5)
    assert mixed["Hg"] == pytest.approx(0.5 * 200.59 / 232.66, rel=1e-3)
    assert Layer.mix([("HgS", 1), (gypsum, 1)], 3.0, 1e-3).composition["Ca"] > 0
    with pytest.raises(ValueError):
        Layer("Xx2O", 1.0, 1.0)


@pytest.mark.parametrize(("symbol", "line"), [("Fe", xraylib.KL3_LINE), ("Pb", xraylib.L3M5_LINE)])
def test_line_lands_on_its_channel(symbol, line):
    resp = stack_response(M6_JETSTREAM, [Layer({symbol: 1.0}, 7.0, 10e-4)])
    energy = xraylib.LineEnergy(xraylib.SymbolToAtomicNumber(symbol), line)
    grid = M6_JETSTREAM.grid
    peak = fit_peak(resp.fluorescence, grid, energy, 0.08)
    assert abs(peak.channel - grid.channel(energy)) < 1.0


def test_fano_width_at_mn_ka():
    mn_ka = xraylib.LineEnergy(25, xraylib.KL3_LINE)
    assert 130 <= detector.fwhm_ev(M6_JETSTREAM, mn_ka) <= 150
    resp = stack_response(M6_JETSTREAM, [Layer("MnO2", 5.0, 5e-4)])
    peak = fit_peak(resp.fluorescence, M6_JETSTREAM.grid, mn_ka, 0.1)
    assert 130 <= peak.fwhm_ev <= 155  # K-alpha1/2 blend adds a few eV


def test_escape_peak_at_e_minus_si_ka():
    grid = M6_JETSTREAM.grid
    row = detector.response_rows(M6_JETSTREAM, np.array([8.0]))[0]
    esc_e = 8.0 - xraylib.LineEnergy(14, xraylib.KL3_LINE)
    window = np.abs(grid.centres() - esc_e) < 0.4
    centre = grid.centres()[window][np.argmax(row[window])]
    assert abs(centre - esc_e) < 0.015
    assert 1e-3 < row[window].sum() < 0.05  # fraction of ~0.5 % at 8 keV
    assert row.sum() == pytest.approx(1.0, abs=1e-3)  # response conserves counts
    assert detector.escape_fraction(np.array([1.5]))[0] == 0.0


def test_self_absorption_saturates_and_top_layer_shields():
    thin = stack_response(M6_JETSTREAM, [Layer("HgS", 8.1, 1e-4)]).element_rates["Hg"]
    thick = stack_response(M6_JETSTREAM, [Layer("HgS", 8.1, 50e-4)]).element_rates["Hg"]
    thicker = stack_response(M6_JETSTREAM, [Layer("HgS", 8.1, 200e-4)]).element_rates["Hg"]
    assert 0 < thin < thick
    assert thicker == pytest.approx(thick, rel=0.02)  # infinitely thick
    bare = stack_response(M6_JETSTREAM, [CHALK]).element_rates["Ca"]
    covered = stack_response(M6_JETSTREAM, [LEAD_WHITE, CHALK])
    assert covered.element_rates["Ca"] < 1e-3 * bare  # Ca K can't leave through 20 um Pb white
    assert covered.element_rates["Pb"] > 0


def test_element_rates_cover_all_elements_and_absent_are_zero():
    resp = stack_response(M6_JETSTREAM, [Layer("Fe2O3", 5.2, 10e-4), CHALK])
    assert set(resp.element_rates) == set(ELEMENTS)
    assert resp.element_rates["Fe"] > 0 and resp.element_rates["Ca"] > 0
    assert resp.element_rates["Hg"] == 0.0 and resp.element_rates["Pb"] == 0.0
    assert np.allclose(resp.rates, resp.fluorescence + resp.scatter)
    assert resp.rates.dtype == np.float64 and resp.rates.shape == (M6_JETSTREAM.grid.channels,)


def test_m6_rates_realistic_and_fast():
    stack = [LEAD_WHITE, CHALK]
    resp = stack_response(M6_JETSTREAM, stack)  # warm the caches
    assert 1e4 <= resp.total_rate <= 3e5  # order 10^4-10^5 cps at 600 uA
    start = time.perf_counter()
    for i in range(10):
        stack_response(M6_JETSTREAM, [Layer("Pb3(CO3)2(OH)2", 6.1, (10 + i) * 1e-4), CHALK])
    assert (time.perf_counter() - start) / 10 < 0.5


def test_m1_glass_removes_low_energy_excitation():
    exc, flux = tube.incident_flux(M1_MISTRAL)
    low = flux[exc.energies < 8.0].sum()
    assert low < 1e-3 * flux.sum()
    exc6, flux6 = tube.incident_flux(M6_JETSTREAM)
    assert flux6[exc6.energies < 8.0].sum() > 0.1 * flux6.sum()
    resp = stack_response(M1_MISTRAL.with_(spot_um=2000.0), [Layer("HgS", 8.1, 20e-4)])
    assert resp.element_rates["Hg"] > 0


def test_element_rate_is_the_photopeak_part_of_the_fluorescence():
    resp = stack_response(M6_JETSTREAM, [Layer("Fe2O3", 5.2, 30e-4)])
    fe = resp.element_rates["Fe"]
    # Fe has only K lines above 0.9 keV: escape + shelf take ~2-3 % of the counts
    assert 0.95 * resp.fluorescence.sum() < fe < resp.fluorescence.sum()


def test_conditions_change_only_what_they_should():
    he = M6_JETSTREAM.with_(current_ua=199.0, atmosphere="He")
    assert he.grid == M6_JETSTREAM.grid and he.anode == "Rh"
    full = stack_response(M6_JETSTREAM, [CHALK]).element_rates["Ca"]
    third = stack_response(M6_JETSTREAM.with_(current_ua=200.0), [CHALK]).element_rates["Ca"]
    assert third == pytest.approx(full / 3, rel=1e-9)  # rates scale with tube current
    assert stack_response(he, [CHALK]).element_rates["Ca"] > third  # He absorbs less than air
