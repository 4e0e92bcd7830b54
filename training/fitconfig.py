"""PyMca fit configurations generated from an instrument description (proto/INSTRUMENT.md).

Any anode: the excitation comes from PyMca's own Ebel tube model (`XRayTubeEbel`, the model
behind its Tube widget) with the anode's density from PyMca's element table, through the
tube window, the description's filters and the gas between optic and sample. A monochromatic
beam is one excitation energy whose Rayleigh and Compton peaks are fitted. Background (SNIP)
and smoothing widths are given in keV and converted to channels with the description's gain,
so a detector at 29 eV/channel gets the same background as one at 10 eV/channel.
"""

from __future__ import annotations

import math
import re

import numpy as np
import xraylib
from PyMca5.PyMcaIO import ConfigDict
from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory, Elements, XRayTubeEbel

from proto.elements import LINE_GROUP
from proto.instrument import InstrumentDescription, Layer, Tube
from proto.messages import MAX_ELEMENTS

SNIP_WIDTH_KEV = 0.4  # ~3x an SDD's peak FWHM: passes under peaks, follows the continuum
# Savitzky-Golay smoothing before SNIP: on noisy short-dwell pixels SNIP alone clips to the
# noise minima, biasing every area up (Au L +140 % at 100 ms on the simulated M6); 0.25 keV
# removes most there, not on the real M6 spectrum (Au 6x at 100 ms, scripts/short_dwell.py).
# Wider is no cure: at 1 keV the simulated 100 ms scene's Au error doubles (0.142 -> 0.279).
# The cure is one background for the scan's pixels, stripped from its sum (proto.continuum).
SMOOTHING_KEV = 0.25
# PyMca's Savitzky-Golay keeps its coefficients in a 101-wide stack array (SpecfitFuns.c,
# MAX_SAVITSKY_GOLAY_WIDTH): a wider window writes past it and the process dies (segfault)
MAX_SMOOTHING_CHANNELS = 101
CONTINUUM_BIN_KEV = 0.6  # excitation continuum bins (PyMca's own step is 0.2 keV)
COMPTON_MARGIN_KEV = 1.8  # fit window ends this far below the anode K-alpha Compton peak
LIGHT_ANODE_KEV = 10.0  # ... unless that leaves less than this (Cr, Cu): scatter is fitted
LOW_KEV = {"air": 1.5, "He": 1.0, "vacuum": 0.8}  # below: the path leaves too few counts
GAS = {"air": ("Air", 0.0012048), "He": ("He", 0.000166)}
DETECTOR_DENSITY = {"Si": 2.33, "Ge": 5.323, "CdTe": 5.85}
# Map elements first; the rest are lines painters' materials put in range and that would
# otherwise be absorbed into a neighbour's area (S K under Pb M, K K next to Ca K, ...).
# L split by sub-shell: the L3/L2/L1 ratios change with self-absorption in a thick Pb/Hg/Au
# layer, and fixed ratios would push the misfit into As K (under Pb L-alpha).
COMMON_PEAKS = {
    "Ca": "K", "Mn": "K", "Fe": "K", "Cu": "K", "As": "K",
    "Au": "L1, L2, L3, M", "Hg": "L1, L2, L3, M", "Pb": "L1, L2, L3, M",
    "Si": "K", "P": "K", "S": "K", "Cl": "K", "Ar": "K", "K": "K", "Ti": "K", "Cr": "K",
    "Co": "K", "Ni": "K", "Zn": "K", "Sr": "K", "Ag": "L",
}
_SHELL = {"K": xraylib.K_SHELL, "L1": xraylib.L1_SHELL, "L2": xraylib.L2_SHELL,
          "L3": xraylib.L3_SHELL, "L": xraylib.L3_SHELL, "M": xraylib.M5_SHELL}
_LINES = {"K": (xraylib.KL3_LINE, xraylib.KM3_LINE), "L1": (xraylib.L1M3_LINE,),
          "L2": (xraylib.L2M4_LINE,), "L3": (xraylib.L3M5_LINE,),
          "L": (xraylib.L3M5_LINE, xraylib.L2M4_LINE, xraylib.L1M3_LINE),
          "M": (xraylib.M5N7_LINE,)}


def _density(layer: Layer) -> float:
    return layer.density_g_cm3 or float(Elements.Element[layer.material]["density"])


def _formula(material: str) -> str:
    """PyMca's spelling: every element with its count ("SiO2" -> "Si1O2")."""
    if material in Elements.Element:
        return material
    return "".join(f"{el}{n or 1}" for el, n in re.findall(r"([A-Z][a-z]?)(\d*\.?\d*)",
                                                            material))


def compton_kev(energy_kev: float, angle_deg: float) -> float:
    return energy_kev / (1 + energy_kev / 510.999 * (1 - math.cos(math.radians(angle_deg))))


def excitation_lists(
    desc: InstrumentDescription, continuum_bin_kev: float = CONTINUUM_BIN_KEV
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energies keV, weights summing to 1, 1 where a line (anode or beam) else 0)."""
    exc = desc.excitation
    if not isinstance(exc, Tube):
        return np.array([exc.energy_kev]), np.array([1.0]), np.array([1])
    filters = [[_formula(f.material), _density(f), f.thickness_um * 1e-4] for f in exc.filters]
    geo = desc.geometry
    if geo.atmosphere in GAS and geo.path_in_cm > 0:
        filters.append([*GAS[geo.atmosphere], geo.path_in_cm])
    anode_density = float(Elements.Element[exc.anode]["density"])
    energy, weight, lines = XRayTubeEbel.generateLists(
        [exc.anode, anode_density, 0.0002], exc.voltage_kv,
        window=[_formula(exc.window.material), _density(exc.window),
                exc.window.thickness_um * 1e-4],
        alphae=exc.electron_incidence_deg, alphax=exc.anode_takeoff_deg,
        filterlist=filters or None)
    # Coarsen PyMca's 0.2 keV continuum (weight-averaged energies): the model build time
    # scales with the number of energies and the line ratios barely move.
    is_line = lines > 0
    bins = np.unique(np.floor(energy[~is_line] / continuum_bin_kev), return_inverse=True)[1]
    cont_w = np.bincount(bins, weights=weight[~is_line])
    cont_e = np.bincount(bins, weights=weight[~is_line] * energy[~is_line]) / np.maximum(
        cont_w, 1e-300)
    energy = np.concatenate([energy[is_line], cont_e])
    weight = np.concatenate([weight[is_line], cont_w])
    flags = np.concatenate([np.ones(is_line.sum(), int), np.zeros(cont_e.size, int)])
    keep = weight > weight.max() * 1e-4  # energies the filters leave nothing of
    return energy[keep], weight[keep] / weight[keep].sum(), flags[keep]


def fit_range(desc: InstrumentDescription) -> tuple[float, float]:
    """The description's [fit] range_kev, else: from where the gas path leaves counts to
    1.8 keV below the anode K-alpha Compton peak (tube; 0.6 x kV for a light anode like Cr or
    Cu, whose scatter peaks are then fitted) or 1 keV above the beam (mono)."""
    grid = desc.calibration.grid
    if "range_kev" in desc.fit:
        lo, hi = desc.fit["range_kev"]
    else:
        exc, angle = desc.excitation, desc.geometry.scattering_deg
        lo = LOW_KEV[desc.geometry.atmosphere]
        if not isinstance(exc, Tube):
            hi = exc.energy_kev + 1.0
        else:
            z = xraylib.SymbolToAtomicNumber(exc.anode)
            hi = 0.6 * exc.voltage_kv
            if xraylib.EdgeEnergy(z, xraylib.K_SHELL) < exc.voltage_kv:
                ka = xraylib.LineEnergy(z, xraylib.KL3_LINE)
                below = compton_kev(ka, angle) - COMPTON_MARGIN_KEV
                # a light anode's lines sit mid-spectrum: fit their scatter peaks instead
                hi = hi if below < LIGHT_ANODE_KEV else min(hi, below)
    lo, hi = max(lo, grid.low + 5 * grid.gain), min(hi, grid.high - 5 * grid.gain)
    if not lo < hi:
        raise ValueError(f"{desc.name}: empty fit range {lo:.3f}-{hi:.3f} keV on {grid}")
    return lo, hi


def peak_list(desc: InstrumentDescription, lo: float, hi: float) -> dict[str, list[str] | str]:
    """Element -> line groups: COMMON_PEAKS, the anode's scattered L lines as a pseudo-element,
    the description's [fit] peaks, its [fit] maps (K and L, where not given); each group kept
    only if the excitation reaches its edge and one of its main lines lies in the fit window
    (PyMca cannot fit an unexcited line). A map element left with no group is refused."""
    exc = desc.excitation
    top = exc.voltage_kv if isinstance(exc, Tube) else exc.energy_kev
    wanted = dict(COMMON_PEAKS)
    if isinstance(exc, Tube):
        wanted.setdefault(exc.anode, "L")
    wanted.update(desc.fit.get("peaks", {}))
    for el in desc.fit.get("maps", ()):
        wanted.setdefault(el, "K, L")
    peaks: dict[str, list[str] | str] = {}
    for el, spec in wanted.items():
        z = xraylib.SymbolToAtomicNumber(el)
        groups = [g.strip() for g in spec.split(",")]
        kept = [g for g in groups if _edge(z, g) < top
                and any(lo <= _line(z, line) <= hi for line in _LINES[g])]
        if kept:
            peaks[el] = kept if len(kept) > 1 else kept[0]
    for el in desc.fit.get("maps", ()):  # the study's eight are mapped on LINE_GROUP's lines
        groups = peaks.get(el, [])
        fitted = {g[0] for g in ([groups] if isinstance(groups, str) else groups)}  # K, L, M
        needed = {LINE_GROUP[el]} if el in LINE_GROUP else {"K", "L"}
        if not fitted & needed:
            raise ValueError(f"{desc.name}: cannot map {el}: no {' or '.join(sorted(needed))} "
                             f"line of it is both excited and inside the fit window "
                             f"{lo:.2f}-{hi:.2f} keV")
    return peaks


def _edge(z: int, group: str) -> float:
    try:
        return xraylib.EdgeEnergy(z, _SHELL[group])
    except ValueError:
        return math.inf


def _line(z: int, line: int) -> float:
    try:
        return xraylib.LineEnergy(z, line)
    except ValueError:  # no such line for this element
        return -1.0


def check_pymca_limits(cfg: ConfigDict.ConfigDict) -> None:
    """A configuration PyMca's C code would crash on, refused in words first."""
    width = int(cfg["fit"].get("stripfilterwidth", 1))
    width += 1 - width % 2  # PyMca widens an even window by one
    if cfg["fit"].get("stripflag") and width > MAX_SMOOTHING_CHANNELS:
        raise ValueError(f"fit.stripfilterwidth {width}: PyMca's smoothing before SNIP takes "
                         f"at most {MAX_SMOOTHING_CHANNELS} channels (a wider one crashes it)")


def _attenuator(layer: Layer | None) -> list:
    if layer is None:
        return [0, "-", 0.0, 0.0, 1.0]
    return [1, _formula(layer.material), _density(layer), layer.thickness_um * 1e-4, 1.0]


def make_config(desc: InstrumentDescription, *, fit_kev: tuple[float, float] | None = None,
                snip_width_kev: float | None = None, smoothing_kev: float | None = None,
                continuum_bin_kev: float = CONTINUUM_BIN_KEV) -> ConfigDict.ConfigDict:
    """A complete PyMca fit configuration (every key PyMca expects, from its own defaults);
    a coarser `continuum_bin_kev` builds the fit model faster (quick checks)."""
    grid = desc.calibration.grid
    lo, hi = fit_kev or fit_range(desc)
    snip = snip_width_kev or desc.fit.get("snip_width_kev", SNIP_WIDTH_KEV)
    smooth = smoothing_kev or desc.fit.get("smoothing_kev", SMOOTHING_KEV)
    smooth_ch = max(1, round(smooth / grid.gain)) | 1  # odd: a centred window
    if smooth_ch > MAX_SMOOTHING_CHANNELS:
        if smooth == SMOOTHING_KEV:  # our default on a fine grid: PyMca's widest instead
            smooth_ch = MAX_SMOOTHING_CHANNELS
        else:
            raise ValueError(
                f"smoothing_kev {smooth:g} is {smooth_ch} channels of {grid.gain * 1e3:.3g} eV; "
                f"PyMca smooths over at most {MAX_SMOOTHING_CHANNELS} (set smoothing_kev <= "
                f"{MAX_SMOOTHING_CHANNELS * grid.gain:.3g} in the description's [fit])")
    cfg = ConfigDict.ConfigDict()
    cfg.update(ClassMcaTheory.McaTheory().config)
    energy, weight, is_line = excitation_lists(desc, continuum_bin_kev)
    # Scatter peaks are fitted for the lines inside the window (a monochromatic beam's
    # Rayleigh + Compton); the rest of a tube's scatter is continuum under SNIP.
    scatter = [int(bool(f) and lo <= e <= hi + 1.0) for e, f in zip(energy, is_line, strict=True)]
    fit = cfg["fit"]
    fit.update({
        "energy": [float(e) for e in energy], "energyweight": [float(w) for w in weight],
        "energyflag": [1] * len(energy), "energyscatter": scatter,
        "scatterflag": int(any(scatter)),
        "xmin": max(0, round(grid.channel(lo))), "xmax": min(grid.channels - 1,
                                                             round(grid.channel(hi))),
        "use_limit": 1, "stripflag": 1,
        "stripalgorithm": 1,  # SNIP: the fast fit requires it
        "snipwidth": max(1, round(snip / grid.gain)), "stripiterations": 20000, "stripwidth": 1,
        "stripfilterwidth": smooth_ch,
        "stripanchorsflag": 0, "linearfitflag": 0, "continuum": 0, "escapeflag": 1,
        # Pile-up: at M6 rates (~20 % dead time) sum peaks sit on Au/Hg/Pb L. The fast fit
        # keeps the pile-up shape of the scan's sum spectrum with a free amplitude per pixel.
        "sumflag": 1,
        "hypermetflag": 1,  # Gaussian peaks (no tails): what an SDD at these rates shows
        "fitweight": 1, "maxiter": 10, "deltachi": 0.001, "strategyflag": 0,
    })
    det = desc.detector
    # pile-up factor "sum": PyMca's default, right for one spectrum of seconds; a scan's sum
    # spectrum wants it scaled to its live time (training.labels.refine_config)
    cfg["detector"].update({
        "detele": "Te" if det.material == "CdTe" else det.material, "zero": grid.offset,
        "gain": grid.gain, "noise": det.noise_ev * 1e-3, "fano": det.fano, "fixedzero": 0,
        "fixedgain": 0, "fixednoise": 0, "fixedfano": 0, "deltazero": 0.05,
        "deltagain": 0.0005, "deltanoise": 0.05, "deltafano": 0.1, "sum": 1e-8, "fixedsum": 0,
        "deltasum": 1e-8, "ignoreinputcalibration": 0, "nthreshold": 4,
    })
    geo = desc.geometry
    att = cfg["attenuators"]
    gas = GAS.get(geo.atmosphere)
    att["atmosphere"] = [0, "-", 0.0, 0.0, 1.0] if gas is None or geo.path_out_cm == 0 else \
        [1, gas[0], gas[1], geo.path_out_cm, 1.0]
    att["window"] = _attenuator(det.window)
    att["deadlayer"] = _attenuator(Layer(det.material, det.dead_layer_um,
                                         DETECTOR_DENSITY[det.material])
                                   if det.dead_layer_um > 0 else None)
    att["Detector"] = [1, _formula(det.material), DETECTOR_DENSITY[det.material],
                       det.thickness_um * 1e-4, 1.0]
    # A thin generic paint matrix (organic binder); its only job is sensible line ratios.
    explicit = geo.scatter_deg is not None
    att["Matrix"] = [1, "Water", 1.0, 0.001, geo.incidence_deg, geo.takeoff_deg,
                     int(explicit), geo.scattering_deg]
    for key in ("BeamFilter0", "BeamFilter1", "absorber", "kapton", "contact"):
        att[key] = [0, "-", 0.0, 0.0, 1.0]  # tube filters are in the excitation weights
    cfg["peaks"] = peak_list(desc, lo, hi)
    if isinstance(desc.excitation, Tube) and any(scatter):
        # the anode's fluorescence would be the same column as its Rayleigh-scattered lines
        cfg["peaks"].pop(desc.excitation.anode, None)
    exc = desc.excitation
    if isinstance(exc, Tube):
        cfg.setdefault("tube", {}).update({
            "anode": exc.anode, "voltage": exc.voltage_kv, "window": exc.window.material,
            "windowthickness": exc.window.thickness_um * 1e-4,
            "windowdensity": _density(exc.window), "alphae": exc.electron_incidence_deg,
            "alphax": exc.anode_takeoff_deg, "transmission": 0, "anodethickness": 0.0002})
    else:
        cfg.pop("tube", None)
    cfg["concentrations"]["usematrix"] = 0
    cfg["maxrf"] = {"preset": desc.name, "fit_kev": [lo, hi], "snip_width_kev": snip,
                    "smoothing_kev": smooth, "instrument_fingerprint": desc.fingerprint(),
                    "units": "counts per live second of each main line group"}
    if "maps" in desc.fit:  # the bundle's outputs (export.fastfit.build_model)
        if len(desc.fit["maps"]) > MAX_ELEMENTS // 2:  # each map travels with its sigma
            raise ValueError(f"{desc.name}: {len(desc.fit['maps'])} maps; a preview carries at "
                             f"most {MAX_ELEMENTS // 2} elements with their sigma (SPEC.md 6)")
        cfg["maxrf"]["maps"] = list(desc.fit["maps"])
    return cfg
