"""Silicon drift detector: efficiency, Fano-limited Gaussian response, Si escape peaks.

Peak width: sigma^2 = (noise/2.3548)^2 + eps * F * E with eps = 3.85 eV per
electron-hole pair in Si and F the Fano factor. Escape fraction after Reed &
Ware (normal incidence): f = 1/2 omega_K (1 - 1/r) [1 - (mu_K/mu_E) ln(1 + mu_E/mu_K)],
omega_K, r and mu from xraylib. A faint flat shelf from incomplete charge
collection sits below each peak. Responses integrate the Gaussian over each
channel (erf at the channel edges), so counts are conserved.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import xraylib
from scipy.special import erf

from training.sim import xsec
from training.sim.instruments import Instrument

PAIR_EV = 3.85
SI_KA_KEV = xraylib.LineEnergy(14, xraylib.KL3_LINE)
SI_K_EDGE = xraylib.EdgeEnergy(14, xraylib.K_SHELL)
# fraction of each peak spread flat from 0 to its energy (incomplete charge collection);
# sized on the real M6 spectrum's flat floor below the P peak
SHELF_FRACTION = 1.2e-2


def sigma_kev(inst: Instrument, energy_kev: np.ndarray | float) -> np.ndarray:
    e_ev = np.asarray(energy_kev, dtype=np.float64) * 1e3
    var = (inst.noise_fwhm_ev / 2.3548) ** 2 + PAIR_EV * inst.fano * np.maximum(e_ev, 0.0)
    return np.sqrt(var) * 1e-3


def fwhm_ev(inst: Instrument, energy_kev: float) -> float:
    return float(2.3548 * sigma_kev(inst, energy_kev) * 1e3)


def efficiency(inst: Instrument, energies: np.ndarray) -> np.ndarray:
    """Fraction of photons at the window that are absorbed in the Si (full or escape)."""
    energies = np.asarray(energies, dtype=np.float64)
    t = np.exp(-xsec.mu(4, energies) * 1.848 * inst.det_be_um * 1e-4)
    mu_si = xsec.mu(14, energies) * 2.33
    t *= np.exp(-mu_si * inst.det_dead_layer_um * 1e-4)
    return t * -np.expm1(-mu_si * inst.det_si_um * 1e-4)


def escape_fraction(energies: np.ndarray) -> np.ndarray:
    energies = np.asarray(energies, dtype=np.float64)
    omega = xraylib.FluorYield(14, xraylib.K_SHELL)
    jump = xraylib.JumpFactor(14, xraylib.K_SHELL)
    mu_k = xsec.mu(14, np.array([SI_KA_KEV]))[0]
    mu_e = xsec.mu(14, np.maximum(energies, SI_K_EDGE))
    ratio = mu_k / mu_e
    f = 0.5 * omega * (1 - 1 / jump) * (1 - ratio * np.log1p(1 / ratio))
    return np.where(energies > SI_K_EDGE, f, 0.0)


def gaussian_rows(
    grid_edges: np.ndarray, centres: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """(M, C) fraction of each unit Gaussian falling in each channel."""
    z = (grid_edges[None, :] - centres[:, None]) / (np.sqrt(2.0) * sigmas[:, None])
    cdf = erf(z)
    return 0.5 * (cdf[:, 1:] - cdf[:, :-1])


def response_rows(
    inst: Instrument, energies: np.ndarray, extra_sigma_kev: np.ndarray | None = None
) -> np.ndarray:
    """(M, C) detected spectrum per photon absorbed in the detector at each energy:
    photopeak (1 - escape - shelf) + Si escape peak + flat shelf. float32."""
    energies = np.asarray(energies, dtype=np.float64)
    edges = inst.grid.edges()
    sig = sigma_kev(inst, energies)
    if extra_sigma_kev is not None:
        sig = np.sqrt(sig**2 + np.asarray(extra_sigma_kev) ** 2)
    esc = escape_fraction(energies)
    rows = gaussian_rows(edges, energies, sig) * (1 - esc - SHELF_FRACTION)[:, None]
    has_esc = esc > 0
    if has_esc.any():
        e_esc = energies[has_esc] - SI_KA_KEV
        sig_esc = sigma_kev(inst, e_esc)
        if extra_sigma_kev is not None:
            sig_esc = np.sqrt(sig_esc**2 + np.asarray(extra_sigma_kev)[has_esc] ** 2)
        rows[has_esc] += gaussian_rows(edges, e_esc, sig_esc) * esc[has_esc, None]
    # shelf: uniform in [0, E] -> overlap of each channel with that interval
    lo, hi = np.maximum(edges[:-1], 0.0), edges[1:]
    overlap = np.clip(np.minimum(hi[None, :], energies[:, None]) - lo[None, :], 0.0, None)
    rows += overlap * (SHELF_FRACTION / np.maximum(energies, 1e-6))[:, None]
    return rows.astype(np.float32)


def resolution_key(inst: Instrument) -> Instrument:
    """The instrument with everything that does not shape a detector response row set to a
    fixed value, so response tables are shared by instruments that differ only in current,
    spot, atmosphere, filters or dead time."""
    return Instrument(
        name="", anode=inst.anode, voltage_kv=inst.voltage_kv, current_ua=1.0, tube_be_um=0.0,
        glass_mm=0.0, electron_incidence_deg=0.0, anode_takeoff_deg=0.0, char_scale=1.0,
        optics="", optics_cutoff_kev=0.0, optics_order=0.0, spot_um=0.0, incidence_deg=0.0,
        takeoff_deg=0.0, scatter_deg=inst.scatter_deg, compton_sigma_rel=inst.compton_sigma_rel,
        atmosphere="", path_in_cm=0.0, path_out_cm=0.0, residual_air=0.0, det_be_um=0.0,
        det_dead_layer_um=0.0, det_si_um=0.0, noise_fwhm_ev=inst.noise_fwhm_ev, fano=inst.fano,
        dead_time_s=0.0, pulse_pair_s=0.0, grid=inst.grid, flux_scale=0.0,
    )


def element_line_rows(inst: Instrument, z: int) -> np.ndarray:
    """(n_lines, C) response rows for every line of element z (cached per resolution)."""
    return _element_line_rows(resolution_key(inst), z)


@lru_cache(maxsize=512)
def _element_line_rows(key: Instrument, z: int) -> np.ndarray:
    lines = xsec.element_lines(z)
    if len(lines.energies) == 0:
        return np.zeros((0, key.grid.channels), dtype=np.float32)
    rows = response_rows(key, lines.energies)
    rows.setflags(write=False)
    return rows
