"""Element-map labels for any dataset (real or simulated) from PyMca's fast linear fit.

    python -m training.labels DATASET CFG            # fit, store maps in DATASET's labels group
    python -m training.labels --write-configs DIR    # regenerate m6.cfg and m1.cfg
    python -m training.labels --tune DATASET CFG     # full fit of the sum spectrum: chi-square

`fit_labels` returns, per element of proto.elements.ELEMENTS found in the config, the fitted
area of its main line group (LINE_GROUP) divided by the pixel's live time: net counts per
live second, the same quantity as the simulator's ground truth and the models' outputs.
PyMca is an independent physics code (its own tube model, line library and peak shapes),
so agreement with the simulator's truth is a real cross-check of both.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PyMca5.PyMcaIO import ConfigDict
from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory, XRayTubeEbel
from PyMca5.PyMcaPhysics.xrf.FastXRFLinearFit import FastXRFLinearFit

from proto.dataset import open_dataset, set_labels
from proto.elements import ELEMENTS, LINE_GROUP
from proto.energy import EnergyGrid

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_BLOCK_PIXELS = 16384  # spectra per PyMca call: bounds memory (PyMca works in float64)


@dataclass(frozen=True)
class FitPreset:
    """What a PyMca fit needs to know about an instrument (from its data sheet, not the sim)."""

    name: str
    anode: str
    voltage_kv: float
    tube_window_be_um: float
    filters: tuple[tuple[str, float, float], ...]  # (formula, density g/cm3, thickness cm)
    grid: EnergyGrid
    fit_kev: tuple[float, float]
    noise_kev: float  # electronic noise FWHM
    fano: float
    air_path_cm: float
    incidence_deg: float
    takeoff_deg: float
    peaks: dict[str, str] = field(default_factory=dict)
    snip_width: int = 40  # channels; ~3 x the peak FWHM at 10 eV/channel


# Map elements first; the rest are lines painters' materials put in range and that would
# otherwise be absorbed into a neighbour's area (S K under Pb M, K K next to Ca K, ...).
_COMMON = {
    "Ca": "K", "Mn": "K", "Fe": "K", "Cu": "K", "As": "K",
    # L split by sub-shell: the L3/L2/L1 intensity ratios change with self-absorption in a
    # thick Pb/Hg/Au layer, and fixed ratios would push the misfit into As K (under Pb L-alpha).
    "Au": "L1, L2, L3, M", "Hg": "L1, L2, L3, M", "Pb": "L1, L2, L3, M",
    "Si": "K", "P": "K", "S": "K", "Cl": "K", "Ar": "K", "K": "K", "Ti": "K", "Cr": "K",
    "Co": "K", "Ni": "K", "Zn": "K", "Sr": "K", "Ag": "L",
}
PRESETS: dict[str, FitPreset] = {
    # Bruker M6 Jetstream: Rh 50 kV, polycapillary, XFlash 430 (450 um Si, 12.5 um Be).
    # The fit stops at 17 keV, below the Rh K Compton peak (~18.8 keV at ~155 deg). Noise and
    # Fano from a full PyMca fit of the real M6 spectrum in ../shared/data (reduced chi2 3.4).
    "m6": FitPreset(
        name="M6 Jetstream", anode="Rh", voltage_kv=50.0, tube_window_be_um=100.0, filters=(),
        grid=EnergyGrid(-0.9555, 0.009999, 4096), fit_kev=(1.6, 17.0), noise_kev=0.06,
        fano=0.15, air_path_cm=1.0, incidence_deg=90.0, takeoff_deg=65.0,
        peaks={**_COMMON, "Rh": "L"},  # Rh L: tube lines scattered by the paint
    ),
    # Bruker M1 Mistral: W tube behind ~2 mm glass, so excitation starts near 10 keV; the
    # scattered W L lines sit in the middle of the spectrum and are fitted as a pseudo-element.
    "m1": FitPreset(
        name="M1 Mistral", anode="W", voltage_kv=50.0, tube_window_be_um=100.0,
        filters=(("Si1O2", 2.2, 0.2),), grid=EnergyGrid(-0.02, 0.01, 4096), fit_kev=(3.0, 17.0),
        noise_kev=0.11, fano=0.115, air_path_cm=2.0, incidence_deg=90.0, takeoff_deg=45.0,
        peaks={**_COMMON, "W": "L"},
    ),
}


def _tube_lists(p: FitPreset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Excitation energies and weights from PyMca's Ebel tube model (as its Tube widget does)."""
    anode_density = {"Rh": 12.41, "W": 19.3}[p.anode]
    energy, weight, scatter = XRayTubeEbel.generateLists(
        [p.anode, anode_density, 0.0002], p.voltage_kv,
        window=["Be", 1.848, p.tube_window_be_um * 1e-4], alphae=70.0, alphax=20.0,
        filterlist=[list(f) for f in p.filters] or None,
    )
    # Coarsen the 0.2 keV continuum to ~0.6 keV bins (weight-averaged energies): the model
    # build time scales with the number of energies and the line ratios barely move.
    lines = scatter > 0
    bins = np.floor(energy[~lines] / 0.6)
    cont_w = np.bincount(np.unique(bins, return_inverse=True)[1], weights=weight[~lines])
    cont_e = np.bincount(np.unique(bins, return_inverse=True)[1],
                         weights=weight[~lines] * energy[~lines]) / np.maximum(cont_w, 1e-300)
    energy = np.concatenate([energy[lines], cont_e])
    weight = np.concatenate([weight[lines], cont_w])
    scatter = np.concatenate([scatter[lines], np.zeros(cont_e.size)])
    keep = weight > weight.max() * 1e-4  # drop energies the filters leave nothing of
    weight = weight[keep] / weight[keep].sum()
    return energy[keep], weight, scatter[keep]


def make_config(preset: str | FitPreset) -> ConfigDict.ConfigDict:
    """A complete PyMca fit configuration for a preset, from PyMca's own defaults."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    cfg = ConfigDict.ConfigDict()
    cfg.update(ClassMcaTheory.McaTheory().config)  # every key PyMca expects, defaulted
    energy, weight, _ = _tube_lists(p)
    fit = cfg["fit"]
    fit["energy"] = [float(e) for e in energy]
    fit["energyweight"] = [float(w) for w in weight]
    fit["energyflag"] = [1] * len(energy)
    fit["energyscatter"] = [0] * len(energy)  # scatter peaks lie above the fit range
    fit["scatterflag"] = 0
    fit["xmin"] = round(p.grid.channel(p.fit_kev[0]))
    fit["xmax"] = round(p.grid.channel(p.fit_kev[1]))
    fit["use_limit"] = 1
    fit["stripflag"] = 1
    fit["stripalgorithm"] = 1  # SNIP: the fast fit requires it
    fit["snipwidth"] = p.snip_width
    fit["stripiterations"] = 20000
    fit["stripwidth"] = 1
    # Savitzky-Golay smoothing before SNIP: on noisy short-dwell pixels SNIP alone clips to
    # the noise minima, biasing every area up (Au L +140 % at 100 ms); 25 channels removes most.
    fit["stripfilterwidth"] = 25
    fit["stripanchorsflag"] = 0
    fit["linearfitflag"] = 0
    fit["continuum"] = 0
    fit["escapeflag"] = 1
    # Pile-up: at M6 rates (~20 % dead time) sum peaks sit on Au/Hg/Pb L. The fast fit keeps
    # the pile-up shape of the scan's sum spectrum with a free amplitude per pixel.
    fit["sumflag"] = 1
    fit["hypermetflag"] = 1  # Gaussian peaks (no tails): what an SDD at these rates shows
    fit["fitweight"] = 1
    fit["maxiter"] = 10
    fit["deltachi"] = 0.001
    fit["strategyflag"] = 0
    det = cfg["detector"]
    det.update({
        "detele": "Si", "zero": p.grid.offset, "gain": p.grid.gain, "noise": p.noise_kev,
        "fano": p.fano, "fixedzero": 0, "fixedgain": 0, "fixednoise": 0, "fixedfano": 0,
        "deltazero": 0.05, "deltagain": 0.0005, "deltanoise": 0.05, "deltafano": 0.1,
        "sum": 1e-8, "fixedsum": 0, "deltasum": 1e-8, "ignoreinputcalibration": 0, "nthreshold": 4,
    })
    att = cfg["attenuators"]
    att["atmosphere"] = [1, "Air", 0.0012048, p.air_path_cm, 1.0]
    att["window"] = [1, "Be1", 1.848, 0.00125, 1.0]
    att["deadlayer"] = [1, "Si1", 2.33, 0.0000029, 1.0]
    att["Detector"] = [1, "Si1", 2.33, 0.045, 1.0]
    # A thin generic paint matrix (organic binder); its only job is sensible line ratios.
    att["Matrix"] = [1, "Water", 1.0, 0.001, p.incidence_deg, p.takeoff_deg, 0,
                     p.incidence_deg + p.takeoff_deg]
    for key in ("BeamFilter0", "BeamFilter1", "absorber", "kapton", "contact"):
        att[key] = [0, "-", 0.0, 0.0, 1.0]
    cfg["peaks"] = {el: [s.strip() for s in lines.split(",")] if "," in lines else lines
                    for el, lines in p.peaks.items()}
    tube = cfg.setdefault("tube", {})
    tube.update({"anode": p.anode, "voltage": p.voltage_kv, "window": "Be",
                 "windowthickness": p.tube_window_be_um * 1e-4, "windowdensity": 1.848,
                 "alphae": 70.0, "alphax": 20.0, "transmission": 0,
                 "anodethickness": 0.0002})
    cfg["concentrations"]["usematrix"] = 0
    cfg["maxrf"] = {"preset": p.name, "fit_kev": list(p.fit_kev),
                    "units": "counts per live second of each main line group"}
    return cfg


def write_configs(folder: Path = CONFIG_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PRESETS:
        path = folder / f"{name}.cfg"
        make_config(name).write(str(path))
        paths.append(path)
    return paths


def load_config(cfg_path: str | Path, grid: EnergyGrid | None = None) -> ConfigDict.ConfigDict:
    """Read a .cfg; with `grid`, move its calibration and fit window onto that grid.

    The window is kept in keV: a config written for one calibration fits a file with another.
    """
    cfg = ConfigDict.ConfigDict()
    cfg.read(str(cfg_path))
    if grid is not None:
        det = cfg["detector"]
        lo = det["zero"] + det["gain"] * cfg["fit"]["xmin"]
        hi = det["zero"] + det["gain"] * cfg["fit"]["xmax"]
        det["zero"], det["gain"] = grid.offset, grid.gain
        cfg["fit"]["xmin"] = max(0, round(grid.channel(lo)))
        cfg["fit"]["xmax"] = min(grid.channels - 1, round(grid.channel(hi)))
    cfg["fit"]["stripalgorithm"] = 1  # the fast fit's background must be SNIP
    return cfg


def _group_rows(element: str, names: list[str]) -> list[int]:
    """Fit parameters making up an element's main line group (e.g. Pb L1 + L2 + L3 = Pb L)."""
    prefix = f"{element} {LINE_GROUP[element]}"
    return [i for i, n in enumerate(names)
            if n == prefix or (n.startswith(prefix) and n[len(prefix):].isdigit())]


def fit_cube(
    counts: np.ndarray, live_time_s: np.ndarray, cfg: ConfigDict.ConfigDict,
    elements: tuple[str, ...] = ELEMENTS, ysum: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Fast-fit (N, C) counts; returns element -> (N,) net counts per live second.

    `ysum` (the scan's sum spectrum) sets the pile-up shape; default: the sum of `counts`.
    """
    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    ysum = counts.sum(axis=0) if ysum is None else np.asarray(ysum, dtype=np.float64)
    fitter = FastXRFLinearFit()
    out = fitter.fitMultipleSpectra(y=counts, configuration=cfg, weight=0, refit=1,
                                    concentrations=0, ysum=ysum)
    names = [str(n) for n in out.labels("parameters")]
    params = np.asarray(out["parameters"])
    live = np.asarray(live_time_s, dtype=np.float64).reshape(-1)
    maps = {}
    for el in elements:
        rows = _group_rows(el, names)
        if rows:
            area = params[rows].reshape(len(rows), -1).sum(axis=0)
            maps[el] = (area / live).astype(np.float32)
    return maps


def fit_labels(
    dataset_path: str | Path, cfg_path: str | Path, *, refine: bool = True,
    info: dict | None = None,
) -> dict[str, np.ndarray]:
    """PyMca fast-fit maps of every map element in the config: element -> (H, W) counts/s.

    With `refine`, detector calibration, noise and Fano are first refined by a full fit of the
    scan's sum spectrum (its result goes into `info`), so one config serves every scan of an
    instrument even as its resolution or calibration drifts.
    """
    total, grid = sum_spectrum(dataset_path)
    refined: dict = {}
    if refine:
        try:
            cfg, refined = refine_config(load_config(cfg_path, grid), total)
        except (np.linalg.LinAlgError, ValueError) as exc:  # e.g. too few counts to refine
            refine, refined = False, {"refine_skipped": str(exc)}
    if info is not None:
        info.update(refined)
    with open_dataset(dataset_path) as ds:
        h, w, c = ds.shape
        if not refine:
            cfg = load_config(cfg_path, ds.grid)
        live = ds.live_time_s
        acquired = ds.acquired
        rows = max(1, _BLOCK_PIXELS // w)
        maps: dict[str, np.ndarray] = {}
        for y0 in range(0, h, rows):
            block = ds.counts[y0:y0 + rows]
            r = block.shape[0]
            block_live = np.where(live[y0:y0 + r] > 0, live[y0:y0 + r], 1.0)
            fitted = fit_cube(block.reshape(r * w, c), block_live, cfg, ysum=total)
            for el, values in fitted.items():
                maps.setdefault(el, np.zeros((h, w), np.float32))[y0:y0 + r] = values.reshape(r, w)
    for m in maps.values():
        m[~acquired] = np.nan  # a pixel never measured has no label
    return maps


def store_labels(
    dataset_path: str | Path, cfg_path: str | Path, *, refine: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    info: dict = {}
    maps = fit_labels(dataset_path, cfg_path, refine=refine, info=info)
    refined = ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in info.items())
    source = (f"PyMca FastXRFLinearFit (SNIP) with {Path(cfg_path).name}"
              + (f"; sum-spectrum refinement: {refined}" if refined else ""))
    set_labels(dataset_path, maps, source=source, config=Path(cfg_path).read_text())
    return maps, info


def refine_config(
    cfg: ConfigDict.ConfigDict, spectrum: np.ndarray,
) -> tuple[ConfigDict.ConfigDict, dict]:
    """Full non-linear PyMca fit of one (sum) spectrum, as a PyMca user does before a batch
    fit: refines zero, gain, noise and Fano (which the linear fast fit holds fixed) and
    returns the updated config and the fit's reduced chi-square."""
    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    theory = ClassMcaTheory.McaTheory()
    theory.configure(cfg)
    y = np.asarray(spectrum, dtype=np.float64)
    theory.setData(x=np.arange(y.size, dtype=np.float64), y=y,
                   xmin=cfg["fit"]["xmin"], xmax=cfg["fit"]["xmax"])
    theory.estimate()
    _, result = theory.startfit(digest=1)
    values = dict(zip(result["parameters"], result["fittedpar"], strict=True))
    fitted = {k: float(values[k]) for k in ("Zero", "Gain", "Noise", "Fano")}
    det = cfg["detector"]
    det["zero"], det["gain"] = fitted["Zero"], fitted["Gain"]
    det["noise"], det["fano"] = fitted["Noise"], fitted["Fano"]
    # PyMca's chisq is already reduced: weighted squared residuals / (points - free params)
    return cfg, {"reduced_chisq": float(result["chisq"]), **fitted}


def sum_spectrum(dataset_path: str | Path) -> tuple[np.ndarray, EnergyGrid]:
    with open_dataset(dataset_path) as ds:
        total = np.zeros(ds.shape[2])
        for rows, block in ds.spectra():
            total += block[ds.acquired[rows]].sum(axis=0, dtype=np.float64)
        return total, ds.grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path)
    parser.add_argument("cfg", nargs="?", type=Path)
    parser.add_argument("--write-configs", type=Path, metavar="DIR")
    parser.add_argument("--tune", action="store_true",
                        help="fit the sum spectrum only; print reduced chi-square")
    parser.add_argument("--no-refine", action="store_true",
                        help="use the config's detector calibration and resolution as they are")
    args = parser.parse_args(argv)
    if args.write_configs:
        for path in write_configs(args.write_configs):
            print(path)
        return 0
    if args.dataset is None or args.cfg is None:
        parser.error("DATASET and CFG are required")
    if args.tune:
        total, grid = sum_spectrum(args.dataset)
        _, result = refine_config(load_config(args.cfg, grid), total)
        print(", ".join(f"{k} {v:.5g}" for k, v in result.items()))
        return 0
    maps, info = store_labels(args.dataset, args.cfg, refine=not args.no_refine)
    if info:
        print("sum spectrum: " + ", ".join(
            f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    for el, m in maps.items():
        print(f"{el:>3}: mean {np.nanmean(m):10.3f} counts/s, max {np.nanmax(m):10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
