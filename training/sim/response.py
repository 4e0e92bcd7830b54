"""Expected detected spectrum of a layer stack: primary fluorescence + Rayleigh + Compton.

Per layer i (mass thickness m_i, from the top), excitation energy E and emitted
energy E' (Sherman's primary-fluorescence expression, extended to a stack):

    rate = I0(E) * T_above(E, E') * sigma(E -> E') / sin(psi_in)
           * (1 - exp(-chi_i m_i)) / chi_i * D(E')
    chi_i = mu_i(E) / sin(psi_in) + mu_i(E') / sin(psi_out)
    T_above = exp(-sum_{j<i} m_j (mu_j(E)/sin(psi_in) + mu_j(E')/sin(psi_out)))

sigma is w_k * CS_FluorLine_Kissel_Cascade / (4 pi) for a fluorescence line of
element k, and the layer's differential Rayleigh / Compton cross-section (per
sr) at the instrument's scattering angle for scatter; D is the transmission of
the gas path to the detector times the detector efficiency. The detector solid
angle is folded into the instrument's flux_scale. Neglected: secondary
(inter-element) fluorescence, which adds a few % to e.g. Ca excited by Fe or
Pb L lines, multiple scattering, and the spread of angles in a convergent
polycapillary beam beyond an effective Compton broadening.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from proto.elements import ELEMENTS, LINE_GROUP
from training.sim import detector, tube, xsec
from training.sim.instruments import Instrument
from training.sim.materials import Layer

FOUR_PI = 4.0 * np.pi


@dataclass(frozen=True)
class StackResponse:
    rates: np.ndarray  # (C,) float64 expected detected counts per live second per channel
    element_rates: dict[str, float]  # ELEMENTS -> net counts/s of the main line group
    fluorescence: np.ndarray  # (C,) the fluorescence part of `rates`
    scatter: np.ndarray  # (C,) the Rayleigh + Compton part of `rates`
    line_rates: dict[str, dict[str, float]]  # element -> {"K"|"L"|"M": photopeak counts/s}

    @property
    def total_rate(self) -> float:
        return float(self.rates.sum())


@dataclass(frozen=True)
class _ScatterTables:
    rayleigh_rows: np.ndarray  # (J, C) float32
    compton_rows: np.ndarray  # (J, C) float32
    detect_rayleigh: np.ndarray  # (J,) gas-out transmission x efficiency at E
    detect_compton: np.ndarray  # (J,) same at the Compton energy


@lru_cache(maxsize=8)
def _scatter_rows(key: Instrument) -> tuple[np.ndarray, np.ndarray]:
    """Detector response to the Rayleigh and Compton scatter of every excitation energy:
    (J, C) float32 each, ~16 MB apiece for the M6, shared across currents and atmospheres."""
    e = tube.excitation_grid(key.anode, key.voltage_kv).energies
    ec = xsec.compton_energy(e, key.scatter_deg)
    return (detector.response_rows(key, e),
            detector.response_rows(key, ec, key.compton_sigma_rel * ec))


@lru_cache(maxsize=64)
def _scatter_tables(inst: Instrument) -> _ScatterTables:
    e = tube.excitation_grid(inst.anode, inst.voltage_kv).energies
    ec = xsec.compton_energy(e, inst.scatter_deg)
    rayleigh_rows, compton_rows = _scatter_rows(detector.resolution_key(inst))
    return _ScatterTables(rayleigh_rows, compton_rows, _detect(inst, e), _detect(inst, ec))


def _detect(inst: Instrument, energies: np.ndarray) -> np.ndarray:
    return tube.gas_transmission(inst, energies, inst.path_out_cm) * detector.efficiency(
        inst, energies
    )


@lru_cache(maxsize=1024)
def _line_detect(inst: Instrument, z: int) -> tuple[np.ndarray, np.ndarray]:
    """(detection factor, photopeak fraction) at the lines of element z."""
    energies = xsec.element_lines(z).energies
    peak = 1.0 - detector.escape_fraction(energies) - detector.SHELF_FRACTION
    return _detect(inst, energies), peak


def _depth_factor(chi: np.ndarray, mass_thickness: float) -> np.ndarray:
    """(1 - exp(-chi m)) / chi, finite as chi -> 0."""
    x = chi * mass_thickness
    return np.where(x > 1e-9, -np.expm1(-x) / np.maximum(chi, 1e-300), mass_thickness)


def gas_layer(inst: Instrument) -> Layer | None:
    """The gas column the beam crosses before the sample, as a layer on top of the stack
    (its depth along the sample normal is path_in * sin(psi_in)). Seen by the detector in
    full: an upper bound on the Ar K-alpha of air, fine for a few mm path."""
    comp, density = tube.atmosphere(inst)
    if density <= 0 or inst.path_in_cm <= 0:
        return None
    return Layer(comp, density, inst.path_in_cm * inst.sin_in)


def stack_response(instrument: Instrument, layers: Sequence[Layer]) -> StackResponse:
    """Expected detected counts per live second for a stack of layers (top layer first)."""
    inst = instrument
    gas = gas_layer(inst)
    if gas is not None:
        layers = [gas, *layers]
    exc, flux = tube.incident_flux(inst)
    tables = _scatter_tables(inst)
    sin_in, sin_out = inst.sin_in, inst.sin_out
    channels = inst.grid.channels

    emitters = sorted({xsec.z_of(s) for layer in layers for s in layer.composition})
    element_tables = {z: xsec.excitation_tables(z, exc.key, inst.scatter_deg) for z in emitters}

    # attenuation accumulated above the current layer (log-transmissions)
    above_in = np.zeros(len(exc.energies))
    above_out_r = np.zeros(len(exc.energies))
    above_out_c = np.zeros(len(exc.energies))
    above_out_lines = {z: np.zeros(len(xsec.element_lines(z).energies)) for z in emitters}

    ray_w = np.zeros(len(exc.energies))
    comp_w = np.zeros(len(exc.energies))
    line_rates = {z: np.zeros(len(xsec.element_lines(z).energies)) for z in emitters}

    for layer in layers:
        m = layer.mass_thickness
        comp = [(xsec.z_of(s), w) for s, w in layer.composition.items()]
        mu_e = sum(w * element_tables[z].mu for z, w in comp)
        mu_c = sum(w * element_tables[z].mu_compton for z, w in comp)
        dcs_r = sum(w * element_tables[z].rayleigh for z, w in comp)
        dcs_c = sum(w * element_tables[z].compton for z, w in comp)
        primary = flux * np.exp(-above_in) / sin_in  # (J,)

        if m > 0:
            g_r = _depth_factor(mu_e / sin_in + mu_e / sin_out, m)
            g_c = _depth_factor(mu_e / sin_in + mu_c / sin_out, m)
            ray_w += primary * dcs_r * g_r * np.exp(-above_out_r)
            comp_w += primary * dcs_c * g_c * np.exp(-above_out_c)
            for z, w in comp:
                fl = element_tables[z].fluor  # (n_lines, J)
                if fl.shape[0] == 0:
                    continue
                mu_line = sum(wa * xsec.mu_at_lines(za, z) for za, wa in comp)  # (n_lines,)
                chi = mu_e[None, :] / sin_in + mu_line[:, None] / sin_out
                g = _depth_factor(chi, m)
                line_rates[z] += (
                    w / FOUR_PI * np.einsum("lj,lj,j->l", fl, g, primary)
                    * np.exp(-above_out_lines[z])
                )

        above_in += mu_e * m / sin_in
        above_out_r += mu_e * m / sin_out
        above_out_c += mu_c * m / sin_out
        for z in emitters:
            mu_line = sum(wa * xsec.mu_at_lines(za, z) for za, wa in comp)
            if np.ndim(mu_line):
                above_out_lines[z] += mu_line * m / sin_out

    ray_w *= tables.detect_rayleigh
    comp_w *= tables.detect_compton
    scatter = (ray_w.astype(np.float32) @ tables.rayleigh_rows).astype(np.float64)
    scatter += (comp_w.astype(np.float32) @ tables.compton_rows).astype(np.float64)

    fluorescence = np.zeros(channels)
    groups: dict[str, dict[str, float]] = {}
    for z in emitters:
        lines = xsec.element_lines(z)
        if len(lines.energies) == 0:
            continue
        detect, peak = _line_detect(inst, z)
        detected = line_rates[z] * detect
        fluorescence += detected.astype(np.float32) @ detector.element_line_rows(inst, z)
        symbol = _symbol(z)
        groups[symbol] = {
            g: float((detected * peak)[lines.groups == g].sum()) for g in ("K", "L", "M")
        }

    element_rates = {el: groups.get(el, {}).get(LINE_GROUP[el], 0.0) for el in ELEMENTS}
    rates = scatter + fluorescence
    return StackResponse(rates, element_rates, fluorescence, scatter, groups)


@cache
def _symbol(z: int) -> str:
    import xraylib

    return xraylib.AtomicNumberToSymbol(z)
