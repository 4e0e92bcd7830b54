"""Instrument descriptions: tube, optics, geometry, atmosphere and detector.

An `Instrument` is a frozen (hashable) dataclass, so every table derived from
it (tube spectrum, cross-sections on its excitation grid, detector response
matrices) is cached per instrument. Use `instrument.with_(...)` to change the
conditions of one measurement (current, atmosphere, spot) without touching
the preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from proto.energy import EnergyGrid


@dataclass(frozen=True)
class Instrument:
    name: str
    # --- tube -------------------------------------------------------------
    anode: str  # element symbol of the anode
    voltage_kv: float
    current_ua: float
    tube_be_um: float  # tube exit window (Be)
    glass_mm: float  # extra SiO2 glass filter in the beam (M1: ~2 mm), 0 for none
    electron_incidence_deg: float  # electrons on the anode, from the anode surface
    anode_takeoff_deg: float  # X-rays leaving the anode, from the anode surface
    char_scale: float  # empirical factor on Ebel's anode line intensities
    # --- optics -----------------------------------------------------------
    optics: str  # "polycapillary" | "collimator"
    optics_cutoff_kev: float  # polycapillary transmission falls off above this energy
    optics_order: float  # steepness of that fall-off
    spot_um: float
    # --- geometry (angles from the sample surface) ---------------------------
    incidence_deg: float
    takeoff_deg: float
    scatter_deg: float  # effective scattering angle (sets the Compton energy)
    compton_sigma_rel: float  # Doppler + angular spread of the Compton peak, sigma / E'
    # --- atmosphere ---------------------------------------------------------
    atmosphere: str  # "air" | "He" | "vacuum"
    path_in_cm: float  # optics exit -> sample
    path_out_cm: float  # sample -> detector window
    residual_air: float  # fraction of air left in the path under He flush
    # --- detector (SDD) ------------------------------------------------------
    det_be_um: float
    det_dead_layer_um: float
    det_si_um: float
    noise_fwhm_ev: float  # electronic noise, added in quadrature to the Fano width
    fano: float
    dead_time_s: float  # non-paralysable dead time per processed event
    pulse_pair_s: float  # pile-up resolving time
    grid: EnergyGrid
    # photons/s reaching the detector = flux_scale x Ebel photons/(s sr mA keV) x physics.
    # Lumps tube solid angle, optics gain and detector solid angle / 4 pi; calibrated
    # on the real M6 spectrum (see compare_real.py).
    flux_scale: float

    def with_(self, **changes) -> Instrument:
        return dataclasses.replace(self, **changes)

    @property
    def current_ma(self) -> float:
        return self.current_ua * 1e-3

    @property
    def sin_in(self) -> float:
        return float(np.sin(np.radians(self.incidence_deg)))

    @property
    def sin_out(self) -> float:
        return float(np.sin(np.radians(self.takeoff_deg)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grid"] = self.grid.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Instrument:
        """The inverse of to_dict (a simulated dataset's `instrument` record)."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(d)
        if missing:
            raise ValueError(f"not a simulator instrument record: missing {sorted(missing)}")
        values = {k: d[k] for k in names}
        values["grid"] = EnergyGrid.from_dict(d["grid"])
        return cls(**values)


# Bruker M6 Jetstream: 30 W Rh tube, polycapillary, XFlash 430 SDD (450 um Si, Be window
# and dead layer from the real .spx header). Scattering angle and optics fall-off fitted
# to the real spectrum's Compton peak position and high-energy continuum.
M6_JETSTREAM = Instrument(
    name="M6 Jetstream",
    anode="Rh",
    voltage_kv=50.0,
    current_ua=600.0,
    tube_be_um=100.0,
    glass_mm=0.0,
    electron_incidence_deg=70.0,
    anode_takeoff_deg=20.0,
    char_scale=1.7,
    optics="polycapillary",
    optics_cutoff_kev=14.0,
    optics_order=6.0,
    spot_um=580.0,
    incidence_deg=90.0,
    takeoff_deg=65.0,
    scatter_deg=155.0,
    compton_sigma_rel=0.011,
    atmosphere="air",
    path_in_cm=0.5,
    path_out_cm=1.0,
    residual_air=0.2,
    det_be_um=12.5,
    det_dead_layer_um=0.029,
    det_si_um=450.0,
    noise_fwhm_ev=74.0,
    fano=0.115,
    dead_time_s=2.0e-6,
    pulse_pair_s=5.0e-8,
    grid=EnergyGrid(-0.95550444, 0.009999, 4096),
    flux_scale=6.6e-5,
)

# Bruker M1 Mistral: W microfocus tube behind ~2 mm glass (continuum below ~10 keV
# is absorbed), pinhole collimators (spot set per scene: 1 mm or 2 mm), SDD.
M1_MISTRAL = Instrument(
    name="M1 Mistral",
    anode="W",
    voltage_kv=50.0,
    current_ua=800.0,
    tube_be_um=100.0,
    glass_mm=2.0,
    electron_incidence_deg=70.0,
    anode_takeoff_deg=20.0,
    char_scale=1.0,
    optics="collimator",
    optics_cutoff_kev=1e9,
    optics_order=1.0,
    spot_um=1000.0,
    incidence_deg=90.0,
    takeoff_deg=45.0,
    scatter_deg=135.0,
    compton_sigma_rel=0.011,
    atmosphere="air",
    path_in_cm=1.0,
    path_out_cm=1.0,
    residual_air=0.1,
    det_be_um=12.5,
    det_dead_layer_um=0.03,
    det_si_um=450.0,
    noise_fwhm_ev=70.0,
    fano=0.115,
    dead_time_s=2.0e-6,
    pulse_pair_s=3.0e-7,
    grid=EnergyGrid(-0.02, 0.01, 4096),
    # no polycapillary gain: ~20x less flux per mA than the M6 (~10^3-10^4 cps on paint)
    flux_scale=3.0e-6,
)
