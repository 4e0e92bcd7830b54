"""Element-map labels for any dataset (real or simulated) from PyMca's fast linear fit.

    python -m training.labels DATASET CFG            # fit, store maps in DATASET's labels group
    python -m training.labels --write-configs DIR    # regenerate m6.cfg and m1.cfg from
                                                     # training/instruments/*.toml
    python -m training.labels --tune DATASET CFG     # full fit of the sum spectrum: chi-square

`fit_labels` returns, per element of proto.elements.ELEMENTS found in the config, the fitted
area of its main line group (LINE_GROUP) divided by the pixel's live time: net counts per
live second, the same quantity as the simulator's ground truth and the models' outputs.
PyMca is an independent physics code (its own tube model, line library and peak shapes),
so agreement with the simulator's truth is a real cross-check of both.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PyMca5.PyMcaIO import ConfigDict
from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory
from PyMca5.PyMcaPhysics.xrf.FastXRFLinearFit import FastXRFLinearFit

from proto.dataset import open_dataset, set_labels
from proto.elements import ELEMENTS, LINE_GROUP
from proto.energy import EnergyGrid
from proto.instrument import InstrumentDescription
from proto.instrument import load as load_description
from training import fitconfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_BLOCK_PIXELS = 16384  # spectra per PyMca call: bounds memory (PyMca works in float64)
# a generous pulse-pair resolution (an SDD's pile-up inspector resolves ~0.05-1 us): the
# refinement's second pile-up start, so it comes down onto the true factor (refine_config)
PULSE_PAIR_S = 1e-6
# iterations of the refinement's fit: one spectrum, so convergence is cheap; the configs'
# 10 (PyMca's default) stopped it short, where it stood depending on the start (IXRF
# training sum started at 9e-8: reduced chi-square 9.13 after 10, 4.68 after 30, as from 3e-8)
REFINE_MAXITER = 30


INSTRUMENTS_DIR = Path(__file__).resolve().parent / "instruments"
PRESETS = {"m6": "m6_jetstream", "m1": "m1_mistral"}  # shipped configs -> their descriptions


def make_config(
    instrument: str | Path | InstrumentDescription, **options: Any
) -> ConfigDict.ConfigDict:
    """A complete PyMca fit configuration for an instrument description: a loaded one, a TOML
    path or a name of PRESETS. Any anode or a monochromatic beam; `options` (fit_kev,
    snip_width_kev, smoothing_kev) are in keV, see training.fitconfig."""
    if isinstance(instrument, str) and instrument in PRESETS:
        instrument = INSTRUMENTS_DIR / f"{PRESETS[instrument]}.toml"
    if not isinstance(instrument, InstrumentDescription):
        instrument = load_description(instrument)
    return fitconfig.make_config(instrument, **options)


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
    fitconfig.check_pymca_limits(cfg)
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
    total, grid, live_s = sum_spectrum(dataset_path)
    refined: dict = {}
    if refine:
        try:
            cfg, refined = refine_config(load_config(cfg_path, grid), total, live_s)
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
    cfg: ConfigDict.ConfigDict, spectrum: np.ndarray, live_time_s: float | None = None,
) -> tuple[ConfigDict.ConfigDict, dict]:
    """Full non-linear PyMca fit of one (sum) spectrum, as a PyMca user does before a batch
    fit: refines zero, gain, noise and Fano (which the linear fast fit holds fixed) and
    returns the updated config and the fit's reduced chi-square.

    PyMca's pile-up factor multiplies the spectrum's self-convolution, so it scales as the
    detector's pulse-pair time over the spectrum's live time: the config's 1e-8 suits one
    spectrum of seconds, but a scan's sum of 1e4 live seconds wants ~5e-12, and started
    2,000x too high the fit pins it there and bends noise and Fano to make up (a simulated
    100 ms M6 scene: reduced chi-square 325,814, noise 0.060 keV and Fano 0.098 against the
    instrument's 0.074 and 0.115). With the spectrum's `live_time_s` a second start scaled to
    it (PULSE_PAIR_S / live time) is fitted too, and the lower chi-square wins.
    """
    starts = [float(cfg["detector"]["sum"])]
    if cfg["fit"]["sumflag"] and live_time_s and live_time_s > 0:
        starts.append(PULSE_PAIR_S / float(live_time_s))
    fits = [_full_fit(cfg, spectrum, start) for start in starts]
    chisq, fitted = min(fits, key=lambda f: f[0])
    det = cfg["detector"]
    det["zero"], det["gain"] = fitted["Zero"], fitted["Gain"]
    det["noise"], det["fano"] = fitted["Noise"], fitted["Fano"]
    return cfg, {"reduced_chisq": chisq, **fitted}  # Pileup: not kept, the fast fit frees it


def _full_fit(cfg: ConfigDict.ConfigDict, spectrum: np.ndarray, pileup: float
              ) -> tuple[float, dict[str, float]]:
    """(reduced chi-square, fitted zero, gain, noise, Fano and pile-up factor) of one spectrum,
    the pile-up factor started at `pileup` and free within [0, 2 x pileup] (PyMca's quoted
    bounds)."""
    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    cfg = copy.deepcopy(cfg)
    cfg["detector"]["sum"] = cfg["detector"]["deltasum"] = pileup
    cfg["fit"]["maxiter"] = max(int(cfg["fit"]["maxiter"]), REFINE_MAXITER)
    theory = ClassMcaTheory.McaTheory()
    theory.configure(cfg)
    y = np.asarray(spectrum, dtype=np.float64)
    theory.setData(x=np.arange(y.size, dtype=np.float64), y=y,
                   xmin=cfg["fit"]["xmin"], xmax=cfg["fit"]["xmax"])
    theory.estimate()
    _, result = theory.startfit(digest=1)
    values = dict(zip(result["parameters"], result["fittedpar"], strict=True))
    # PyMca's chisq is already reduced: weighted squared residuals / (points - free params)
    fitted = {k: float(values[k]) for k in ("Zero", "Gain", "Noise", "Fano")}
    return float(result["chisq"]), {**fitted, "Pileup": float(values["Sum"])}


def sum_spectrum(dataset_path: str | Path) -> tuple[np.ndarray, EnergyGrid, float]:
    """(the acquired pixels' sum spectrum, the grid, their summed live time in seconds)."""
    with open_dataset(dataset_path) as ds:
        total = np.zeros(ds.shape[2])
        for rows, block in ds.spectra():
            total += block[ds.acquired[rows]].sum(axis=0, dtype=np.float64)
        return total, ds.grid, acquired_live_s(ds)


def acquired_live_s(ds) -> float:
    """The summed live time of an open dataset's acquired pixels (its sum spectrum's)."""
    return float(np.asarray(ds.live_time_s, np.float64)[ds.acquired].sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path,
                        help="dataset file to fit (its labels group is written)")
    parser.add_argument("cfg", nargs="?", type=Path, help="PyMca fit configuration (.cfg)")
    parser.add_argument("--write-configs", type=Path, metavar="DIR",
                        help="write the m6.cfg and m1.cfg presets into DIR and stop")
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
    if not args.cfg.is_file():  # ConfigDict reads a missing file as an empty config
        print(f"labels: {args.cfg}: no such configuration file", file=sys.stderr)
        return 1
    try:
        if args.tune:
            total, grid, live_s = sum_spectrum(args.dataset)
            _, result = refine_config(load_config(args.cfg, grid), total, live_s)
            print(", ".join(f"{k} {v:.5g}" for k, v in result.items()))
            return 0
        maps, info = store_labels(args.dataset, args.cfg, refine=not args.no_refine)
    except (OSError, ValueError) as exc:  # a wrong path, a dataset or .cfg we cannot use
        print(f"labels: {exc}", file=sys.stderr)
        return 1
    if info:
        print("sum spectrum: " + ", ".join(
            f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    for el, m in maps.items():
        print(f"{el:>3}: mean {np.nanmean(m):10.3f} counts/s, max {np.nanmax(m):10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
