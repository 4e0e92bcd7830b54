"""Cached xraylib tables: lines of each element and cross-sections on excitation grids.

Every constant comes from xraylib (line energies, Kissel cascade fluorescence
cross-sections = photoionisation x fluorescence yield x radiative rate with
cascades, total attenuation, differential Rayleigh and Compton cross-sections).
Tables are cached per element and per excitation grid, so a new layer stack only
costs array arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import xraylib
import xraylib_np

# Lines simulated per shell (xraylib IUPAC macros). The main groups a fit would use.
_K_LINES = ("KL2", "KL3", "KM2", "KM3", "KN2", "KN3")
_L_LINES = (
    "L3M1", "L3M4", "L3M5", "L3N1", "L3N4", "L3N5", "L3O4", "L3O5",
    "L2M1", "L2M4", "L2N4", "L2O4",
    "L1M2", "L1M3", "L1N2", "L1N3",
)
_M_LINES = ("M5N6", "M5N7", "M4N6", "M3N5")
MIN_LINE_KEV = 0.9  # below: absorbed by air / window, and below the grids we use


@dataclass(frozen=True)
class Lines:
    """Emission lines of one element: xraylib macros, energies (keV), group 'K'|'L'|'M'."""

    macros: np.ndarray  # int
    names: tuple[str, ...]  # IUPAC names, e.g. "KL3", "L3M5"
    energies: np.ndarray  # float64
    groups: np.ndarray  # str


@cache
def z_of(symbol: str) -> int:
    return int(xraylib.SymbolToAtomicNumber(symbol))


@cache
def element_lines(z: int) -> Lines:
    macros, names_kept, energies, groups = [], [], [], []
    for group, names in (("K", _K_LINES), ("L", _L_LINES), ("M", _M_LINES)):
        for name in names:
            macro = getattr(xraylib, f"{name}_LINE")
            try:
                energy = xraylib.LineEnergy(z, macro)
                rate = xraylib.RadRate(z, macro)
            except ValueError:
                continue
            if energy > MIN_LINE_KEV and rate > 0:
                macros.append(macro)
                names_kept.append(name)
                energies.append(energy)
                groups.append(group)
    return Lines(
        np.array(macros, dtype=np.int64), tuple(names_kept), np.array(energies), np.array(groups)
    )


def mu(z: int, energies: np.ndarray) -> np.ndarray:
    """Total mass attenuation coefficient (cm^2/g) at the given energies."""
    return xraylib_np.CS_Total(np.array([z]), np.asarray(energies, dtype=np.float64))[0]


def mu_mixture(composition: dict[str, float], energies: np.ndarray) -> np.ndarray:
    out = np.zeros(len(energies))
    for symbol, w in composition.items():
        out += w * mu(z_of(symbol), energies)
    return out


@cache
def mu_at_lines(z_absorber: int, z_emitter: int) -> np.ndarray:
    """Attenuation of `z_absorber` at the line energies of `z_emitter` (cm^2/g)."""
    energies = element_lines(z_emitter).energies
    if len(energies) == 0:
        return np.zeros(0)
    return mu(z_absorber, energies)


@dataclass(frozen=True)
class ExcitationTables:
    """One element's cross-sections on an excitation grid (all cm^2/g, DCS per sr)."""

    mu: np.ndarray  # (J,) at the excitation energies
    mu_compton: np.ndarray  # (J,) at the Compton-scattered energies
    rayleigh: np.ndarray  # (J,) DCS_Rayl at the scattering angle
    compton: np.ndarray  # (J,) DCS_Compt at the scattering angle
    fluor: np.ndarray  # (n_lines, J) CS_FluorLine_Kissel_Cascade


@lru_cache(maxsize=1024)
def excitation_tables(
    z: int, energies_key: tuple[float, ...], scatter_deg: float
) -> ExcitationTables:
    energies = np.asarray(energies_key)
    theta = np.radians(scatter_deg)
    zs = np.array([z])
    compton_e = compton_energy(energies, scatter_deg)
    lines = element_lines(z)
    if len(lines.macros):
        fluor = xraylib_np.CS_FluorLine_Kissel_Cascade(zs, lines.macros, energies)[0]
    else:
        fluor = np.zeros((0, len(energies)))
    return ExcitationTables(
        mu=mu(z, energies),
        mu_compton=mu(z, compton_e),
        rayleigh=xraylib_np.DCS_Rayl(zs, energies, np.array([theta]))[0, :, 0],
        compton=xraylib_np.DCS_Compt(zs, energies, np.array([theta]))[0, :, 0],
        fluor=np.nan_to_num(fluor),
    )


def compton_energy(energies: np.ndarray, scatter_deg: float) -> np.ndarray:
    """Compton-scattered photon energy (keV) for the given angle (same as xraylib.ComptonEnergy)."""
    one_minus_cos = 1.0 - np.cos(np.radians(scatter_deg))
    return np.asarray(energies) / (1.0 + np.asarray(energies) / 510.998950 * one_minus_cos)
