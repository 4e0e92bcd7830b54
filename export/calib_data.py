"""A lab's scans for `make calibrate`: read, split, PyMca-labelled (export.calibrate).

Every input goes through training.readers (our dataset files, IXRF .GeoPIXE, APS MAPS HDF5,
Bruker, ...), one detector element at a time: a scan read by several detectors is several
independent measurements of the same pixels, so one element can calibrate and another judge.

The reference on any set of pixels is PyMca run as its user runs it on that data: its
calibration (zero, gain, noise, Fano) refined by a full fit of the set's own sum spectrum,
then FastXRFLinearFit on the whole set in one call (training.labels' labels). The held-out
pixels get their own PyMca call, so nothing of them reaches the training side: not the
refined calibration, not the pile-up shape, not the pooled refit.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PyMca5.PyMcaIO import ConfigDict

from export.calib_header import header_conflict, spot_um
from export.fastfit import ConfiguredFit, FastFitModel, build_model, configured_fit
from proto.energy import EnergyGrid
from proto.instrument import InstrumentDescription
from training.data import Scene
from training.lab_split import Part, Rect, split
from training.labels import make_config, refine_config
from training.readers import ReaderError, read

QUICK_CONTINUUM_KEV = 3.0  # --quick: coarse tube continuum, PyMca configures ~3x faster
LABEL_BLOCK = 4096  # spectra per PyMca call (its float64 copies bound the memory)


@dataclass
class LabScan:
    """One detector element of one scan, pixels flattened in scan order."""

    name: str  # file stem + detector
    source: Path
    detector: str  # the element's name, "sum" or "" (single-detector file)
    shape: tuple[int, int]
    counts: np.ndarray  # (N, C) counts on `grid`, as read (uint16/uint32: no float copy)
    live_time_s: np.ndarray  # (N,) float64
    grid: EnergyGrid
    spot_px: float  # beam FWHM in pixels (0: unknown)
    instrument: dict = field(default_factory=dict)

    def scene(self) -> Scene:
        """The scan as training.lab_split sees it. The split asks only which pixels were
        acquired (finite, positive rates), so `rates` is one column, each pixel's total counts
        per live second: the (N, C) quotient of a 1000 x 1000 x 4096 map would be 16 GB."""
        live = self.live_time_s
        total = np.concatenate([self.counts[i:i + LABEL_BLOCK].sum(axis=1, dtype=np.float64)
                                for i in range(0, len(live), LABEL_BLOCK)])
        rates = np.full((len(live), 1), np.nan)  # never acquired: in neither side
        rates[live > 0, 0] = total[live > 0] / live[live > 0]
        return Scene(self.name, self.source, self.shape, rates,
                     float(np.median(live[live > 0])))


class Rows:
    """Pixels `idx` of lab scans as (N, C) float32 rows, made a slice at a time: one side of a
    split without an (N, C) copy of the map (a 490 x 490 x 4096 scan is 3.9 GB as float32;
    its copies and float64 quotients took calibrate past 23 GB). Counts, or with
    `per_live_second` counts per live second (training.residual's SpectraRows)."""

    def __init__(self, parts: Sequence[tuple[LabScan, np.ndarray]],
                 per_live_second: bool = False) -> None:
        self.parts = [(scan, np.asarray(idx)) for scan, idx in parts if len(idx)]
        if not self.parts:
            raise ValueError("no pixels")
        self.ends = np.cumsum([len(idx) for _, idx in self.parts])
        self.per_live_second = per_live_second
        self.live_time_s = np.concatenate([s.live_time_s[i] for s, i in self.parts])

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.take(np.arange(*rows.indices(len(self))))

    def subset(self, positions: np.ndarray) -> Rows:
        """The rows at sorted `positions`, as Rows of the same pixels (no spectra read)."""
        starts = self.ends - [len(idx) for _, idx in self.parts]
        return Rows([(scan, idx[positions[(positions >= a) & (positions < b)] - a])
                     for (scan, idx), a, b in zip(self.parts, starts, self.ends, strict=True)],
                    self.per_live_second)

    def take(self, positions: np.ndarray) -> np.ndarray:
        which = np.searchsorted(self.ends, positions, side="right")
        out = np.empty((len(positions), self.parts[0][0].counts.shape[1]), np.float32)
        for k, (scan, idx) in enumerate(self.parts):
            here = which == k
            pixels = idx[positions[here] - (self.ends[k] - len(idx))]
            out[here] = scan.counts[pixels] if not self.per_live_second else (
                scan.counts[pixels] / np.maximum(scan.live_time_s[pixels], 1e-12)[:, None])
        return out


def total_counts(counts: np.ndarray | Rows) -> np.ndarray:
    """(C,) float64 sum spectrum, LABEL_BLOCK rows at a time (no float64 copy of them all)."""
    return sum(np.asarray(counts[i:i + LABEL_BLOCK]).sum(axis=0, dtype=np.float64)
               for i in range(0, len(counts), LABEL_BLOCK))


def detectors_of(path: str | Path) -> tuple[str, ...]:
    """The detector elements a file keeps apart (() for one)."""
    return read(path).detector_names


def load_scan(path: str | Path, detector: str | int | None, desc: InstrumentDescription
              ) -> LabScan:
    """One detector (index, name or "sum") of a file; a multi-detector file without a choice
    is summed, as `make convert` does. A file without calibration takes the description's.
    A file whose header states another excitation than `desc` is refused (calib_header)."""
    path = Path(path)
    scan = read(path)
    names = scan.detector_names
    if names and detector is None:
        detector = "sum"
    picked = scan.select(detector) if names else scan
    if not names and detector not in (None, 0, "0", "sum"):
        raise ReaderError(path, f"detector {detector!r}: the file has one detector")
    grid = picked.grid
    if grid is None:
        nominal = desc.calibration.grid
        if nominal.channels != picked.counts.shape[-1]:
            raise ReaderError(path, "no energy calibration in the file, and the description's "
                                    f"is for {nominal.channels} channels")
        grid = nominal
    if picked.live_time_s is None:
        raise ReaderError(path, "no live time in the file (convert it with --live-time)")
    if (conflict := header_conflict(picked.instrument, desc)) is not None:
        raise ReaderError(path, conflict)
    h, w = picked.hw
    label = picked.scan.get("detector", "") if names else ""
    pixel_um = picked.scan.get("pixel_size_um") or 0.0
    spot = spot_um(picked.instrument, desc)
    return LabScan(
        name=path.stem + (f"[{label}]" if label else ""), source=path, detector=label,
        shape=(h, w), counts=np.asarray(picked.counts).reshape(h * w, -1),
        live_time_s=np.asarray(picked.live_time_s, np.float64).reshape(-1), grid=grid,
        spot_px=spot / pixel_um if pixel_um else 0.0, instrument=dict(picked.instrument))


def split_scans(train: list[LabScan], tests: list[LabScan], held_out: str | None
                ) -> list[tuple[LabScan, Part]]:
    """training.lab_split's protocol on lab scans: --test scans, a rectangle of the first
    training scan, or automatic (the last scan, else the last quarter of the first)."""
    rect = Rect.parse(held_out) if held_out else None
    parts = split([s.scene() for s in train], [s.scene() for s in tests], rect,
                  [s.spot_px for s in train])
    scans = {s.name: s for s in [*train, *tests]}
    return [(scans[p.scene.name], p) for p in parts]


class PymcaRef:
    """PyMca for one instrument description: its configuration (generated once), refined and
    configured per pixel set, and the fast fit compiled from the same configuration."""

    def __init__(self, desc: InstrumentDescription, *, quick: bool = False,
                 refine: bool = True) -> None:
        opts = {"continuum_bin_kev": QUICK_CONTINUUM_KEV} if quick else {}
        self.desc, self.refine = desc, refine
        self.base = make_config(desc, **opts)
        self._same: dict[EnergyGrid, Fitted] = {}  # without refinement: one per grid

    def config(self, grid: EnergyGrid, spectrum: np.ndarray | None, live_s: float | None = None
               ) -> tuple[ConfigDict.ConfigDict, dict]:
        """The configuration on `grid`, refined on `spectrum` (a sum spectrum of `live_s`
        live seconds) when asked."""
        cfg = copy.deepcopy(self.base)
        lo, hi = (self.base["detector"]["zero"] + self.base["detector"]["gain"]
                  * self.base["fit"][k] for k in ("xmin", "xmax"))
        cfg["detector"]["zero"], cfg["detector"]["gain"] = grid.offset, grid.gain
        cfg["fit"]["xmin"] = max(0, round(grid.channel(lo)))
        cfg["fit"]["xmax"] = min(grid.channels - 1, round(grid.channel(hi)))
        if not self.refine or spectrum is None:
            return cfg, {}
        try:
            return refine_config(cfg, spectrum, live_s)
        except (np.linalg.LinAlgError, ValueError) as exc:  # too few counts to refine
            return cfg, {"refine_skipped": str(exc)}

    def fitted(self, counts: np.ndarray | Rows, grid: EnergyGrid, live_time_s: np.ndarray
               ) -> Fitted:
        """PyMca for the spectra `counts` (N, C) on `grid`, refined on their own sum (of
        `live_time_s`, their live times: the pile-up's scale, see refine_config)."""
        if not self.refine and grid in self._same:
            return self._same[grid]  # PyMca's configuration takes seconds: done once
        cfg, info = self.config(grid, total_counts(counts), float(np.sum(live_time_s)))
        fitter = configured_fit(cfg)
        model = build_model(cfg, grid.channels, fitter=fitter)
        fitted = Fitted(cfg, info, fitter, model)
        if not self.refine:
            self._same[grid] = fitted
        return fitted


@dataclass
class Fitted:
    cfg: ConfigDict.ConfigDict
    refined: dict  # reduced chi-square, zero, gain, noise, Fano, pile-up of the refinement
    fitter: ConfiguredFit
    model: FastFitModel  # the fast fit compiled from this configuration

    def labels(self, counts: np.ndarray | Rows, live_time_s: np.ndarray, progress=None
               ) -> np.ndarray:
        """(N, G) PyMca fast-fit areas per live second in model.outputs order, the whole set
        in one call per LABEL_BLOCK spectra (as training.labels), pile-up from its sum."""
        logging.getLogger("PyMca5").setLevel(logging.ERROR)
        ysum = total_counts(counts)
        out = np.zeros((len(counts), len(self.model.outputs)), np.float32)
        for i in range(0, len(counts), LABEL_BLOCK):
            block = np.asarray(counts[i:i + LABEL_BLOCK], np.float64)
            res = self.fitter.fitMultipleSpectra(y=block, configuration=self.cfg, weight=0,
                                                 refit=1, concentrations=0, ysum=ysum)
            names = [str(n) for n in res.labels("parameters")]
            params = np.asarray(res["parameters"]).reshape(len(names), -1)
            rows = [self.model.names.index(n) for n in names]
            combine = self.model.combine[:, rows]  # PyMca's groups -> the map elements
            out[i:i + len(block)] = (combine @ params).T
            if progress is not None:
                progress.update(len(block))
        live = np.maximum(np.asarray(live_time_s, np.float64), 1e-12)
        return (out / live[:, None]).astype(np.float32)


def epochs_for(n_train: int, presentations: int = 100_000, lo: int = 8, hi: int = 60) -> int:
    """Epochs scaled to the data: ~`presentations` spectra seen in all, between lo and hi
    (a scan of a few thousand pixels needs far more passes than a 240,000-pixel corpus)."""
    return int(min(hi, max(lo, math.ceil(presentations / max(n_train, 1)))))

