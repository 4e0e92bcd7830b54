"""X-ray tube spectrum after the tube window, filters, optics and air path (Ebel 1999).

Continuum: Ebel's Kramers-type expression with the anode self-absorption factor
f(chi) = (1 - exp(-2 chi rho_z)) / (2 chi rho_z) and Ebel's mean depth of
photon generation. Anode lines: Ebel's characteristic-line expression (stopping
factor 1/S, backscatter factor R, fluorescence yield, radiative rate, jump
ratio), all atomic constants from xraylib. The spectrum is tabulated on a fixed
excitation grid: continuum bins of `BIN_KEV` plus one entry per anode line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xraylib

from training.sim import xsec
from training.sim.instruments import Instrument

BIN_KEV = 0.05  # continuum bin width; << detector sigma smearing the scatter of each bin
MIN_EXCITATION_KEV = 1.0
EBEL_CONTINUUM = 1.35e9  # photons / (s sr mA keV)
EBEL_LINES = 5.0e13  # photons / (s sr mA)
# Ebel's expression is calibrated for K lines; for L lines (Rh L on the M6) it
# overestimates here: the real M6 spectrum shows only a faint Rh L scatter peak.
L_LINE_SCALE = 0.07
AIR = {"N": 0.7553, "O": 0.2318, "Ar": 0.0128, "C": 0.0001}
AIR_DENSITY = 1.205e-3
HE_DENSITY = 1.66e-4


@dataclass(frozen=True)
class Excitation:
    energies: np.ndarray  # (J,) keV: continuum bin centres, then anode lines
    is_line: np.ndarray  # (J,) bool
    key: tuple[float, ...]  # hashable copy of energies for cached tables


@lru_cache(maxsize=32)
def excitation_grid(anode: str, voltage_kv: float) -> Excitation:
    centres = np.arange(MIN_EXCITATION_KEV + BIN_KEV / 2, voltage_kv, BIN_KEV)
    lines = _anode_lines(anode, voltage_kv)
    energies = np.concatenate([centres, np.array([line[0] for line in lines])])
    is_line = np.zeros(len(energies), dtype=bool)
    is_line[len(centres):] = True
    return Excitation(energies, is_line, tuple(float(e) for e in energies))


def _ebel_depth(z: int, e0: float, u0: np.ndarray) -> np.ndarray:
    """Ebel's mean mass depth of X-ray generation rho*z (g/cm^2)."""
    ln_z = np.log(z)
    j = 0.0135 * z
    m = 0.1382 - 0.9211 / np.sqrt(z)
    eta = e0**m * (-0.1904 - 0.2236 * ln_z + 0.1292 * ln_z**2 - 0.01491 * ln_z**3)
    rho_zm = xraylib.AtomicWeight(z) / z * (0.787e-5 * np.sqrt(j) * e0**1.5 + 0.735e-6 * e0**2)
    ln_u = np.log(np.maximum(u0, 1.0 + 1e-9))
    return (
        rho_zm * (0.49269 - 1.0987 * eta + 0.78557 * eta**2) * ln_u
        / (0.70256 - 1.09865 * eta + 1.0046 * eta**2 + ln_u)
    )


def _self_absorption(z: int, e0: float, energies: np.ndarray, u0: np.ndarray, inst) -> np.ndarray:
    chi = xsec.mu(z, energies) * (
        np.sin(np.radians(inst.electron_incidence_deg)) / np.sin(np.radians(inst.anode_takeoff_deg))
    )
    x = 2.0 * chi * _ebel_depth(z, e0, u0)
    return -np.expm1(-x) / np.maximum(x, 1e-12)


@lru_cache(maxsize=32)
def _anode_lines(anode: str, voltage_kv: float) -> tuple[tuple[float, float, float], ...]:
    """(energy keV, Ebel photons/(s sr mA) before self-absorption, U0) per anode line."""
    z = xsec.z_of(anode)
    lines = xsec.element_lines(z)
    j = 0.0135 * z
    out = []
    for macro, name, energy in zip(lines.macros, lines.names, lines.energies, strict=True):
        shell = _SHELLS.get(name[:2] if name[0] == "L" else name[0])
        group = name[0]
        if shell is None or energy > voltage_kv:
            continue
        edge = xraylib.EdgeEnergy(z, shell)
        u0 = voltage_kv / edge
        if u0 <= 1.0:
            continue
        zb = (2 * 0.35) if group == "K" else (8 * 0.25 * L_LINE_SCALE)
        ulnu = u0 * np.log(u0) + 1.0 - u0
        inv_s = zb / z * ulnu * (
            1.0 + 16.05 * np.sqrt(j / edge) * (np.sqrt(u0) * np.log(u0) + 2 * (1 - np.sqrt(u0)))
            / ulnu
        )
        backscatter = (
            1.0 - 0.0081517 * z + 3.613e-5 * z**2 + 0.009583 * z * np.exp(-u0)
            + 0.001141 * voltage_kv
        )
        omega = xraylib.FluorYield(z, shell)
        jump = xraylib.JumpFactor(z, shell)
        rate = xraylib.RadRate(z, int(macro))
        out.append(
            (float(energy), EBEL_LINES * inv_s * backscatter * omega * rate * (1 - 1 / jump), u0)
        )
    return tuple(out)


_SHELLS = {
    "K": xraylib.K_SHELL, "L1": xraylib.L1_SHELL, "L2": xraylib.L2_SHELL, "L3": xraylib.L3_SHELL
}


def atmosphere(inst: Instrument) -> tuple[dict[str, float], float]:
    """(composition, density g/cm^3) of the gas in the beam paths."""
    if inst.atmosphere == "air":
        return AIR, AIR_DENSITY
    if inst.atmosphere == "He":
        f = inst.residual_air
        density = f * AIR_DENSITY + (1 - f) * HE_DENSITY
        comp = {s: w * f * AIR_DENSITY / density for s, w in AIR.items()}
        comp["He"] = (1 - f) * HE_DENSITY / density
        return comp, density
    if inst.atmosphere == "vacuum":
        return AIR, 0.0
    raise ValueError(f"unknown atmosphere {inst.atmosphere!r}")


def gas_transmission(inst: Instrument, energies: np.ndarray, path_cm: float) -> np.ndarray:
    comp, density = atmosphere(inst)
    if density == 0 or path_cm == 0:
        return np.ones(len(energies))
    return np.exp(-xsec.mu_mixture(comp, energies) * density * path_cm)


def optics_transmission(inst: Instrument, energies: np.ndarray) -> np.ndarray:
    if inst.optics == "polycapillary":
        # total-reflection critical angle ~ 1/E: transmission collapses above a cut-off
        return 1.0 / (1.0 + (energies / inst.optics_cutoff_kev) ** inst.optics_order)
    return np.ones(len(energies))


def filters_transmission(inst: Instrument, energies: np.ndarray) -> np.ndarray:
    t = np.exp(-xsec.mu(4, energies) * 1.848 * inst.tube_be_um * 1e-4)
    if inst.glass_mm > 0:
        t *= np.exp(-xsec.mu_mixture({"Si": 0.4674, "O": 0.5326}, energies) * 2.2
                    * inst.glass_mm * 0.1)
    return t


@lru_cache(maxsize=64)
def incident_flux(inst: Instrument) -> tuple[Excitation, np.ndarray]:
    """Photons/s per excitation entry arriving at the sample (times flux_scale)."""
    exc = excitation_grid(inst.anode, inst.voltage_kv)
    z = xsec.z_of(inst.anode)
    e0 = inst.voltage_kv
    energies = exc.energies
    flux = np.zeros(len(energies))
    cont = ~exc.is_line
    ec = energies[cont]
    x = 1.109 - 0.00435 * z + 0.00175 * e0
    u0c = e0 / ec
    flux[cont] = (
        EBEL_CONTINUUM * z * np.maximum(u0c - 1.0, 0.0) ** x
        * _self_absorption(z, e0, ec, u0c, inst) * BIN_KEV
    )
    lines = _anode_lines(inst.anode, inst.voltage_kv)
    if lines:
        el = np.array([line[0] for line in lines])
        edge_u0 = np.array([line[2] for line in lines])
        flux[exc.is_line] = (
            np.array([line[1] for line in lines]) * inst.char_scale
            * _self_absorption(z, e0, el, edge_u0, inst)
        )
    flux *= filters_transmission(inst, energies) * optics_transmission(inst, energies)
    # the gas between optics and sample is a layer of the stack (response.gas_layer):
    # it absorbs the beam there and gives the Ar K peak of air-path spectra
    flux *= inst.current_ma * inst.flux_scale
    flux.setflags(write=False)
    return exc, flux
