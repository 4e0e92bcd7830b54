"""The simulator's instrument: tube, optics, geometry, atmosphere and detector.

An `Instrument` is a frozen (hashable) dataclass, so every table derived from
it (tube spectrum, cross-sections on its excitation grid, detector response
matrices) is cached per instrument. It is built from a lab's instrument
description (`Instrument.from_description`, proto/INSTRUMENT.md); the M6 and
M1 presets are the TOMLs in training/instruments. Use `instrument.with_(...)`
to change the conditions of one measurement (current, atmosphere, spot)
without touching the preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proto.energy import EnergyGrid
from proto.instrument import InstrumentDescription, Tube
from proto.instrument import load as load_description

# Constants the simulator fits per instrument ([simulation] in a description); None: required.
SIMULATION_DEFAULTS: dict[str, float | None] = {
    "char_scale": 1.0,  # empirical factor on Ebel's anode line intensities
    "optics_cutoff_kev": 1e9,  # polycapillary transmission falls off above this energy
    "optics_order": 1.0,  # steepness of that fall-off
    "compton_sigma_rel": 0.011,  # Doppler + angular spread of the Compton peak, sigma / E'
    "residual_air": 0.0,  # fraction of air left in the path under He flush
    "dead_time_s": 2.0e-6,  # non-paralysable dead time per processed event
    "pulse_pair_s": 5.0e-8,  # pile-up resolving time
    "flux_scale": None,  # lumps tube solid angle, optics gain, detector solid angle / 4 pi
}


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
    def from_description(cls, desc: InstrumentDescription) -> Instrument:
        """The simulator's instrument for a lab's description (proto/INSTRUMENT.md); the
        simulator's fitted constants come from its [simulation] table (defaults below)."""
        exc, det, geo = desc.excitation, desc.detector, desc.geometry

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"{desc.name}: the simulator cannot model {what}")

        need(isinstance(exc, Tube), "a monochromatic beam (tube excitation only)")
        assert isinstance(exc, Tube)
        need(exc.window.material == "Be", f"a {exc.window.material} tube window (Be only)")
        glass = [f for f in exc.filters if f.material == "SiO2"]
        need(len(glass) == len(exc.filters) <= 1, "tube filters other than one SiO2 glass")
        need(det.material == "Si" and (det.window is None or det.window.material == "Be"),
             "detectors other than Si behind Be")
        need(exc.current_ua is not None and exc.spot_um is not None,
             "a tube without current_ua and spot_um")
        sim = {**SIMULATION_DEFAULTS, **desc.simulation}
        unknown = sorted(set(sim) - set(SIMULATION_DEFAULTS))
        if unknown:
            raise ValueError(f"{desc.name}: unknown [simulation] keys {unknown}; "
                             f"known: {sorted(SIMULATION_DEFAULTS)}")
        if sim["flux_scale"] is None:
            raise ValueError(f"{desc.name}: [simulation] flux_scale is required")
        return cls(
            name=desc.name, anode=exc.anode, voltage_kv=exc.voltage_kv,
            current_ua=exc.current_ua, tube_be_um=exc.window.thickness_um,
            glass_mm=glass[0].thickness_um * 1e-3 if glass else 0.0,
            electron_incidence_deg=exc.electron_incidence_deg,
            anode_takeoff_deg=exc.anode_takeoff_deg, char_scale=sim["char_scale"],
            optics="polycapillary" if exc.optic == "polycapillary" else "collimator",
            optics_cutoff_kev=sim["optics_cutoff_kev"], optics_order=sim["optics_order"],
            spot_um=exc.spot_um, incidence_deg=geo.incidence_deg, takeoff_deg=geo.takeoff_deg,
            scatter_deg=geo.scattering_deg, compton_sigma_rel=sim["compton_sigma_rel"],
            atmosphere=geo.atmosphere, path_in_cm=geo.path_in_cm, path_out_cm=geo.path_out_cm,
            residual_air=sim["residual_air"],
            det_be_um=0.0 if det.window is None else det.window.thickness_um,
            det_dead_layer_um=det.dead_layer_um, det_si_um=det.thickness_um,
            noise_fwhm_ev=det.noise_ev, fano=det.fano, dead_time_s=sim["dead_time_s"],
            pulse_pair_s=sim["pulse_pair_s"], grid=desc.calibration.grid,
            flux_scale=sim["flux_scale"],
        )

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


INSTRUMENTS_DIR = Path(__file__).resolve().parents[1] / "instruments"


def load_preset(stem: str) -> Instrument:
    """A simulator instrument from `training/instruments/<stem>.toml` (the one source)."""
    return Instrument.from_description(load_description(INSTRUMENTS_DIR / f"{stem}.toml"))


# The study's two scanners; their fitted constants live in the TOMLs' [simulation] tables.
M6_JETSTREAM = load_preset("m6_jetstream")
M1_MISTRAL = load_preset("m1_mistral")
