"""The instrument description: what a lab writes once about its scanner (proto/INSTRUMENT.md).

A TOML file becomes an `InstrumentDescription` (frozen dataclasses), which travels as a plain
dict (`to_dict` / `from_dict`: a dataset's `instrument.description`, `scan_start.instrument`).
`fingerprint()` hashes only what shapes the spectra a model sees (excitation, detector,
geometry, calibration) as integers after stated rounding, so any language can recompute it.
Standard library and `proto.energy` only.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from proto.energy import EnergyGrid

ATMOSPHERES = ("air", "He", "vacuum")
OPTICS = ("polycapillary", "collimator", "none")
COMBINE = ("sum", "separate")
DETECTOR_MATERIALS = ("Si", "Ge", "CdTe")
DEFAULT_FANO = 0.115
PAIR_EV = 3.85  # eV per charge pair in the width formula (PyMca's and the simulator's)
MN_KA_KEV = 5.8988
_SYMBOLS = frozenset(re.findall(r"[A-Z][a-z]?", (
    "HHeLiBeBCNOFNeNaMgAlSiPSClArKCaScTiVCrMnFeCoNiCuZnGaGeAsSeBrKrRbSrYZrNbMoTcRuRhPdAgCdInSn"
    "SbTeIXeCsBaLaCePrNdPmSmEuGdTbDyHoErTmYbLuHfTaWReOsIrPtAuHgTlPbBiPoAtRnFrRaAcThPaU")))
_FORMULA = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")
_REQUIRED = object()


class InstrumentError(ValueError):
    """A description is invalid; the message names the source and the key."""


@dataclass(frozen=True)
class Layer:
    """A window or filter: element or formula, thickness, density (needed for formulas)."""

    material: str
    thickness_um: float
    density_g_cm3: float | None = None


@dataclass(frozen=True)
class Tube:
    anode: str
    voltage_kv: float
    window: Layer
    filters: tuple[Layer, ...] = ()
    optic: str = "none"
    current_ua: float | None = None  # an operating setting: not in the fingerprint
    spot_um: float | None = None  # idem
    electron_incidence_deg: float = 70.0  # electrons on the anode, from its surface
    anode_takeoff_deg: float = 20.0  # X-rays leaving the anode, from its surface
    kind: str = field(default="tube", init=False)


@dataclass(frozen=True)
class Monochromatic:
    energy_kev: float
    spot_um: float | None = None
    kind: str = field(default="monochromatic", init=False)


@dataclass(frozen=True)
class Detector:
    """`count` identical elements; `combine`: "sum" = one spectrum per pixel summing them,
    "separate" = one spectrum per element. Resolution: FWHM^2 = noise^2 + 8 ln2 PAIR_EV F E."""

    type: str
    material: str
    thickness_um: float
    noise_ev: float  # electronic noise, FWHM
    fano: float
    count: int = 1
    combine: str = "sum"
    window: Layer | None = None
    dead_layer_um: float = 0.0

    def fwhm_ev(self, energy_kev: float) -> float:
        return math.sqrt(self.noise_ev**2 + 8e3 * math.log(2) * PAIR_EV * self.fano * energy_kev)

    @property
    def fwhm_mn_ka_ev(self) -> float:
        return self.fwhm_ev(MN_KA_KEV)

    @property
    def elements_per_spectrum(self) -> int:
        return self.count if self.combine == "sum" else 1


@dataclass(frozen=True)
class Geometry:
    """Angles from the sample surface; gas paths optic -> sample (in) and sample -> detector."""

    incidence_deg: float
    takeoff_deg: float
    atmosphere: str = "air"
    path_in_cm: float = 0.0
    path_out_cm: float = 0.0
    scatter_deg: float | None = None  # default: incidence + takeoff (beam and detector coplanar)

    @property
    def scattering_deg(self) -> float:
        return self.incidence_deg + self.takeoff_deg if self.scatter_deg is None \
            else self.scatter_deg


@dataclass(frozen=True)
class Calibration:
    offset_kev: float  # centre of channel 0
    gain_kev: float
    channels: int

    @property
    def grid(self) -> EnergyGrid:
        return EnergyGrid(self.offset_kev, self.gain_kev, self.channels)


@dataclass(frozen=True)
class InstrumentDescription:
    name: str
    excitation: Tube | Monochromatic
    detector: Detector
    geometry: Geometry
    calibration: Calibration
    # Advice for fit configurations (range_kev, snip_width_kev, smoothing_kev, peaks, maps)
    # and the simulator's fitted constants: carried along, never part of the fingerprint.
    fit: dict = field(default_factory=dict, hash=False)
    simulation: dict = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The TOML's structure as plain JSON-able values; `from_dict` reads it back."""
        return {k: v for k, v in _plain(self).items() if v != {}}  # no empty [fit], [simul.]

    @classmethod
    def from_dict(cls, d: Any, *, strict: bool = False, source: str = "instrument"
                  ) -> InstrumentDescription:
        """Validate and build; `strict` (TOML files) also refuses unknown keys (typos)."""
        return _parse(_Table(d, "", source, strict))

    def model_dict(self) -> dict[str, Any]:
        """What the fingerprint hashes: model-relevant fields, integers in stated units."""
        e = self.excitation
        if isinstance(e, Tube):
            exc: dict[str, Any] = {
                "kind": "tube", "anode": e.anode, "voltage_kv": _step(e.voltage_kv, 1),
                "window": _layer_key(e.window), "filters": [_layer_key(f) for f in e.filters],
                "optic": e.optic, "electron_incidence_deg": _step(e.electron_incidence_deg, 1),
                "anode_takeoff_deg": _step(e.anode_takeoff_deg, 1)}
        else:
            exc = {"kind": "monochromatic", "energy_ev": _step(e.energy_kev * 1e3, 10)}
        d, g, c = self.detector, self.geometry, self.calibration
        gas = g.atmosphere != "vacuum"  # path lengths mean nothing in vacuum
        return {
            "excitation": exc,
            "detector": {
                "type": d.type, "material": d.material,
                "elements_per_spectrum": d.elements_per_spectrum,
                "thickness_nm": _sig(d.thickness_um * 1e3, 3),
                "dead_layer_nm": _sig(d.dead_layer_um * 1e3, 2),
                "window": None if d.window is None else _layer_key(d.window),
                "fwhm_mn_ka_ev": _step(d.fwhm_mn_ka_ev, 10)},
            "geometry": {
                "incidence_deg": _step(g.incidence_deg, 1), "takeoff_deg": _step(g.takeoff_deg, 1),
                "scatter_deg": _step(g.scattering_deg, 1), "atmosphere": g.atmosphere,
                "path_in_mm": _step(g.path_in_cm * 10, 1) if gas else 0,
                "path_out_mm": _step(g.path_out_cm * 10, 1) if gas else 0},
            "calibration": {"offset_ev": _step(c.offset_kev * 1e3, 10),
                            "gain_mev": _sig(c.gain_kev * 1e6, 3), "channels": c.channels},
        }

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical JSON of `model_dict()` (INSTRUMENT.md)."""
        text = json.dumps(self.model_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def for_stream(self, summed: bool) -> InstrumentDescription:
        """A stream of this instrument: each spectrum all elements summed, or one's own."""
        return replace(self, detector=replace(self.detector,
                                              combine="sum" if summed else "separate"))


def load(path: str | Path) -> InstrumentDescription:
    try:
        return loads(Path(path).read_text(encoding="utf-8"), source=str(path))
    except OSError as exc:
        raise InstrumentError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def loads(text: str, *, source: str = "instrument") -> InstrumentDescription:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InstrumentError(f"{source}: not valid TOML ({exc})") from exc
    return InstrumentDescription.from_dict(data, strict=True, source=source)


def _plain(obj: Any) -> Any:
    """Dataclasses -> dicts without None fields, tuples -> lists (JSON / TOML values)."""
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)
                if getattr(obj, f.name) is not None}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _step(v: float, step: int) -> int:
    """v rounded to a multiple of `step`, half away from zero (as any language can), int."""
    return int(math.copysign(math.floor(abs(v) / step + 0.5), v)) * step


def _sig(v: float, digits: int) -> int:
    """v (>= 1 in its unit) rounded to `digits` significant figures, as an int."""
    return _step(v, 10 ** max(0, math.floor(math.log10(abs(v))) - digits + 1)) if v else 0


def _layer_key(layer: Layer) -> dict[str, Any]:
    density = layer.density_g_cm3
    return {"material": layer.material, "thickness_nm": _sig(layer.thickness_um * 1e3, 3),
            "density_mg_cm3": None if density is None else _sig(density * 1e3, 3)}


class _Table:
    """Typed access to one TOML table; every error names `source: dotted.key`."""

    def __init__(self, data: Any, path: str, source: str, strict: bool) -> None:
        self.path, self.source, self.strict = path, source, strict
        if not isinstance(data, dict):
            self.fail("", f"must be a table, got {type(data).__name__}")
        self.data, self.used = data, set()

    def fail(self, key: str, problem: str) -> NoReturn:
        where = ".".join(p for p in (self.path, key) if p) or "(top level)"
        raise InstrumentError(f"{self.source}: {where}: {problem}")

    def missing(self, key: str, alternative: str = "") -> NoReturn:
        near = difflib.get_close_matches(key, [str(k) for k in self.data], 1)
        self.fail(key, f"missing{alternative}" + (f" (is {near[0]!r} a typo?)" if near else ""))

    def raw(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _REQUIRED:
                self.missing(key)
            return default
        return self.data[key]

    def num(self, key: str, default: Any = _REQUIRED, *, lo: float | None = 0.0,
            hi: float | None = None, positive: bool = False) -> Any:
        v = self.raw(key, default)
        if v is default and default is not _REQUIRED:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.fail(key, f"must be a finite number, got {v!r}")
        if (positive and v <= 0) or (lo is not None and v < lo) or (hi is not None and v > hi):
            low = "> 0" if positive else "" if lo is None else f">= {lo:g}"
            bound = " and ".join(b for b in (low, "" if hi is None else f"<= {hi:g}") if b)
            self.fail(key, f"must be {bound}, got {v!r}")
        return float(v)

    def int_(self, key: str, default: Any = _REQUIRED) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            self.fail(key, f"must be a positive integer, got {v!r}")
        return v

    def text(self, key: str, default: Any = _REQUIRED, choices: tuple[str, ...] = ()) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str) or not v.strip():
            self.fail(key, f"must be a non-empty string, got {v!r}")
        if choices and v not in choices:
            self.fail(key, f"must be one of {list(choices)}, got {v!r}")
        return v

    def table(self, key: str, default: Any = _REQUIRED) -> _Table | None:
        v = self.raw(key, default)
        return None if v is None else _Table(v, f"{self.path}.{key}".lstrip("."), self.source,
                                             self.strict)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if self.strict and unknown:
            self.fail(unknown[0], f"unknown key (known: {sorted(self.used)})")


def _layer(t: _Table) -> Layer:
    material = t.text("material")
    layer = Layer(material, t.num("thickness_um", positive=True),
                  t.num("density_g_cm3", None, positive=True))
    parts = _FORMULA.findall(material)
    if "".join(s + n for s, n in parts) != material or any(s not in _SYMBOLS for s, _ in parts):
        t.fail("material", f"must be an element symbol or a chemical formula, got {material!r}")
    if material not in _SYMBOLS and layer.density_g_cm3 is None:
        t.fail("density_g_cm3", f"needed for the compound {material!r}")
    t.done()
    return layer


def _parse(top: _Table) -> InstrumentDescription:
    name = top.text("name")
    exc_t = top.table("excitation")
    kind = exc_t.text("kind", choices=("tube", "monochromatic"))
    if kind == "tube":
        anode = exc_t.text("anode")
        if anode not in _SYMBOLS:
            exc_t.fail("anode", f"must be an element symbol, got {anode!r}")
        filters = exc_t.raw("filters", [])
        if not isinstance(filters, list):
            exc_t.fail("filters", "must be a list of tables")
        excitation: Tube | Monochromatic = Tube(
            anode=anode, voltage_kv=exc_t.num("voltage_kv", positive=True),
            window=_layer(exc_t.table("window")),
            filters=tuple(_layer(_Table(f, f"excitation.filters[{i}]", top.source, top.strict))
                          for i, f in enumerate(filters)),
            optic=exc_t.text("optic", "none", OPTICS),
            current_ua=exc_t.num("current_ua", None, positive=True),
            spot_um=exc_t.num("spot_um", None, positive=True),
            electron_incidence_deg=exc_t.num("electron_incidence_deg", 70.0, hi=90.0),
            anode_takeoff_deg=exc_t.num("anode_takeoff_deg", 20.0, hi=90.0))
    else:
        excitation = Monochromatic(exc_t.num("energy_kev", positive=True),
                                   exc_t.num("spot_um", None, positive=True))
    exc_t.done()
    det_t = top.table("detector")
    fano = det_t.num("fano", None, positive=True, hi=1.0)
    noise = det_t.num("noise_ev", None)
    fwhm = det_t.num("fwhm_mn_ka_ev", None, positive=True)
    if fwhm is not None and noise is not None:
        det_t.fail("fwhm_mn_ka_ev", "give either fwhm_mn_ka_ev or noise_ev, not both")
    if fwhm is None and noise is None:
        det_t.missing("noise_ev", " (or give fwhm_mn_ka_ev)")
    fano = DEFAULT_FANO if fano is None else fano
    if fwhm is not None:
        fano_part = 8 * math.log(2) * PAIR_EV * fano * MN_KA_KEV * 1e3
        if fwhm**2 <= fano_part:
            det_t.fail("fwhm_mn_ka_ev", f"{fwhm} eV is below the Fano limit for fano {fano}")
        noise = math.sqrt(fwhm**2 - fano_part)
    window_t = det_t.table("window", None)
    detector = Detector(
        type=det_t.text("type"), material=det_t.text("material", "Si", DETECTOR_MATERIALS),
        thickness_um=det_t.num("thickness_um", positive=True), noise_ev=noise, fano=fano,
        count=det_t.int_("count", 1), combine=det_t.text("combine", "sum", COMBINE),
        window=None if window_t is None else _layer(window_t),
        dead_layer_um=det_t.num("dead_layer_um", 0.0))
    det_t.done()
    geo_t = top.table("geometry")
    geometry = Geometry(
        incidence_deg=geo_t.num("incidence_deg", positive=True, hi=90.0),
        takeoff_deg=geo_t.num("takeoff_deg", positive=True, hi=90.0),
        atmosphere=geo_t.text("atmosphere", "air", ATMOSPHERES),
        path_in_cm=geo_t.num("path_in_cm", 0.0), path_out_cm=geo_t.num("path_out_cm", 0.0),
        scatter_deg=geo_t.num("scatter_deg", None, positive=True, hi=180.0))
    geo_t.done()
    cal_t = top.table("calibration")
    calibration = Calibration(cal_t.num("offset_kev", lo=None),
                              cal_t.num("gain_kev", positive=True), cal_t.int_("channels"))
    cal_t.done()
    fit_t = top.table("fit", None)
    fit = {} if fit_t is None else _fit(fit_t)
    sim_t = top.table("simulation", None)
    simulation = {} if sim_t is None else {k: sim_t.num(k, lo=None) for k in sim_t.data}
    top.done()
    return InstrumentDescription(name, excitation, detector, geometry, calibration, fit,
                                 simulation)


def _fit(t: _Table) -> dict[str, Any]:
    fit: dict[str, Any] = {}
    rng = t.raw("range_kev", None)
    if rng is not None:
        if (not isinstance(rng, list) or len(rng) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng)
                or not 0 <= rng[0] < rng[1]):
            t.fail("range_kev", f"must be [low, high] keV with 0 <= low < high, got {rng!r}")
        fit["range_kev"] = [float(v) for v in rng]
    fit.update({k: v for k in ("snip_width_kev", "smoothing_kev")
                if (v := t.num(k, None, positive=True)) is not None})
    peaks, maps = t.table("peaks", None), t.raw("maps", None)
    if peaks is not None:
        fit["peaks"] = {el: peaks.text(el) for el in peaks.data}
        if bad := sorted(set(fit["peaks"]) - _SYMBOLS):
            peaks.fail(bad[0], "not an element symbol")
    if maps is not None:  # the elements a bundle maps (default: proto.elements.ELEMENTS)
        if not (isinstance(maps, list) and maps and len(set(map(str, maps))) == len(maps)
                and all(isinstance(m, str) and m in _SYMBOLS for m in maps)):
            t.fail("maps", f"must be a list of distinct element symbols, got {maps!r}")
        fit["maps"] = list(maps)
    t.done()
    return fit
