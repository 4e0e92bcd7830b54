"""A stream's energy axis, checked against its own spectra before its element maps are made.

A scanner states each stream's calibration (scan_start: offset, gain); an element bundle's
fast fit was compiled for one axis. A detector whose true axis sits a few eV off its stated
one moves a trace line's counts into its neighbour's model: on the IXRF map, detector 1 states
the same zero and gain as detector 0, but its lines sit ~8 eV higher at Mn K-alpha, in the tail
of a 50x brighter Fe, and Mn's map is lost (r 0.24 against PyMca). PyMca's user refines zero
and gain on the sum spectrum; the edge does the same with the bundle's own fit. It sums a
scan's first pixels until MIN_COUNTS, and serves, for the whole scan, the axis on which the
fit explains that sum best, when it explains it measurably better than the stated axis
(MIN_GAIN) and lies inside the search range; else the stated axis, and says which.

The bundle's `axis.onnx` (export.fastfit_graph.axis_graph) gives the sum less PyMca's
background on the fit window, and the fit's unit responses. The search moves the responses,
not the spectrum: rebinning the counts onto each candidate axis would smooth their noise by a
different amount for each, and the smoothest would win. An axis is a shift at each of two
anchor energies (zero and gain, nearly uncorrelated there), searched on a grid that narrows
around the best point: 13 x 13 candidates a level, from 10 eV steps over +-MAX_SHIFT_EV down to
0.3 eV. The score is the Poisson-weighted residual of the fit's own unweighted least squares.
About 0.4 s once a scan, on one core.

proto imports no runtime: the caller hands in the graph's `run` (an ONNX Runtime session's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from proto.bundle import Bundle, BundleError, sha256_bytes
from proto.energy import EnergyGrid, Rebinner

# axis.onnx's `run(output_names, {"spectra": (N, C) float32})` -> [net, responses]: an ONNX
# Runtime session's run, given by the caller (edge, export): proto imports no runtime.
NetFn = Callable[[list[str], dict[str, np.ndarray]], Sequence[np.ndarray]]
OUTPUTS = ["net", "responses"]

AXIS_FILE = "axis.onnx"
AXIS_KEY = "energy_axis"  # manifest domain entry: file, sha256, anchors_kev, first

MIN_COUNTS = 50_000  # on the IXRF map, 50k counts give its axis to ~2 eV at Mn K-alpha
MAX_HELD = 256  # pixels a scan's previews wait at most for MIN_COUNTS (26 s at 100 ms a pixel)
MIN_GAIN = 0.05  # the best axis must leave >= 5 % less residual than the stated one
MAX_SHIFT_EV = 60.0  # the common shift searched: 6 channels of a 10 eV detector
SLOPE_SPAN_EV = 30.0  # then each anchor's, around it
MIN_GAIN_SLOPE = 0.02  # a slope is kept where it leaves >= 2 % less than the shift alone
STEPS, LEVELS = 13, 3
CHUNK = 32  # candidates scored at once


@dataclass(frozen=True)
class AxisVerdict:
    """What the check decided for one scan (reported in status and the recording)."""

    state: str  # "locked": the refined axis is served; "kept": the stated one is;
    # "off_range": the best axis lies at the edge of the search (the stated one is served);
    # "too_few_counts": the scan ended or MAX_HELD pixels came before MIN_COUNTS (stated);
    # "check_failed": the search raised (stated; `error` says why)
    stated: EnergyGrid
    served: EnergyGrid
    anchors_kev: tuple[float, float]
    shift_ev: tuple[float, float]  # of the best axis at the anchors, refined minus stated
    residual_drop: float  # 1 - residual(best) / residual(stated)
    counts: float  # in the sum it was decided on
    error: str = ""  # "check_failed": why (the stated axis is served)

    def line(self) -> str:
        """For people: what was served and why."""
        at = ", ".join(f"{d:+.1f} eV at {e:.2f} keV" for d, e in zip(self.shift_ev,
                                                                    self.anchors_kev,
                                                                    strict=True))
        why = {"locked": f"its lines sit {at} of the stated axis (fit residual "
                         f"-{100 * self.residual_drop:.0f} %): read on the refined axis",
               "kept": f"the stated axis fits (best shift {at}, residual "
                       f"-{100 * self.residual_drop:.1f} % < {100 * MIN_GAIN:.0f} %)",
               "off_range": f"the best axis lies at the search's edge ({at}): the stated axis "
                            "is served; check the scanner's energy calibration",
               "too_few_counts": f"{self.counts:.0f} counts, fewer than {MIN_COUNTS} to "
                                 "check it: the stated axis is served",
               "check_failed": f"the check failed ({self.error}): the stated axis is served",
               }[self.state]
        return f"Energy axis ({self.state}, on the stream's first {self.counts:.0f} counts): {why}."

    def to_dict(self) -> dict:
        return {"state": self.state, "counts": round(self.counts),
                "stated": [float(self.stated.offset), float(self.stated.gain)],
                "served": [float(self.served.offset), float(self.served.gain)],
                "anchors_kev": [round(float(e), 4) for e in self.anchors_kev],
                "shift_ev": [round(float(s), 2) for s in self.shift_ev],
                "residual_drop": round(float(self.residual_drop), 4),
                **({"error": self.error[:200]} if self.error else {})}


def shifted(stated: EnergyGrid, anchors_kev: tuple[float, float], d1: float, d2: float
            ) -> EnergyGrid:
    """`stated` with its energies moved by d1 keV at anchor 1 and d2 at anchor 2 (linearly)."""
    e1, e2 = anchors_kev
    b = 1.0 + (d2 - d1) / (e2 - e1)
    a = d1 - (b - 1.0) * e1
    return EnergyGrid(float(a + b * stated.offset), float(b * stated.gain), stated.channels)


class AxisCheck:
    """An element bundle's axis check (its `axis.onnx`, run by `run`) on the bundle's `grid`,
    whose fit window starts at channel `first`."""

    def __init__(self, run: NetFn, grid: EnergyGrid, anchors_kev: tuple[float, float],
                 first: int, min_counts: float = MIN_COUNTS) -> None:
        self.run = run
        self.grid, self.anchors_kev = grid, (float(anchors_kev[0]), float(anchors_kev[1]))
        if not self.anchors_kev[1] > self.anchors_kev[0]:
            raise ValueError(f"anchors {self.anchors_kev} keV must rise")
        self.first, self.min_counts = int(first), float(min_counts)
        _, responses = run(OUTPUTS, {"spectra": np.zeros((1, grid.channels), np.float32)})
        self.responses = np.asarray(responses, np.float64)  # (window, P)
        if self.responses.ndim != 2 or self.first + len(self.responses) > grid.channels:
            raise ValueError(f"responses of shape {self.responses.shape} do not fit the grid")
        self.window = self.responses.shape[0]
        self._energies = grid.offset + grid.gain * (self.first + np.arange(self.window))

    def moved(self, shifts: np.ndarray) -> np.ndarray:
        """(K, window, P) the responses where a stream whose energies sit (d1, d2) keV above
        the stated ones at the anchors puts its lines, on the bundle's channels, for each of
        the K rows of `shifts`."""
        e1, e2 = self.anchors_kev
        d = np.asarray(shifts, np.float64).reshape(-1, 2)
        shift = d[:, :1] + (d[:, 1:] - d[:, :1]) * ((self._energies - e1) / (e2 - e1))
        pos = np.arange(self.window) + shift / self.grid.gain  # (K, window)
        lo = np.clip(np.floor(pos).astype(np.intp), 0, self.window - 2)
        frac = np.clip(pos - lo, 0.0, 1.0)[..., None]
        out = self.responses[lo]
        out *= 1.0 - frac
        out += self.responses[lo + 1] * frac
        out[(pos < 0) | (pos > self.window - 1)] = 0.0
        return out

    def residuals(self, net: np.ndarray, weight: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """(K,) what the fit leaves of `net` with its responses moved by each (d1, d2); in
        chunks of CHUNK candidates (a chunk's responses are ~12 MB on a 1500-channel window)."""
        return np.concatenate([self._residuals(net, weight, shifts[i:i + CHUNK])
                               for i in range(0, len(shifts), CHUNK)])

    def _residuals(self, net: np.ndarray, weight: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        d = self.moved(shifts)  # (K, window, P)
        # the fit's own unweighted least squares, by normal equations (P is small); the
        # tiny ridge stands in for the SVD cut-off where two responses nearly coincide
        dt = d.transpose(0, 2, 1)
        gram = dt @ d
        gram += np.eye(gram.shape[1]) * (1e-9 * np.trace(gram, axis1=1, axis2=2))[:, None, None]
        areas = np.linalg.solve(gram, dt @ net[:, None])  # (K, P, 1)
        left = net - (d @ areas)[..., 0]
        return (left ** 2 * weight).sum(axis=1)

    def _search(self, net: np.ndarray, weight: np.ndarray, centre: np.ndarray, span: float,
                both: bool) -> tuple[np.ndarray, float, bool]:
        """(best (d1, d2), its residual, whether the first level's best lay on its edge):
        one common shift (both False) or one per anchor, on a grid narrowing 6x a level."""
        best, best_res, edge = centre, np.inf, False
        for level in range(LEVELS):
            steps = np.linspace(-span, span, STEPS)
            d = (np.stack(np.meshgrid(steps, steps, indexing="ij"), -1).reshape(-1, 2) if both
                 else np.repeat(steps[:, None], 2, axis=1)) + centre
            res = self.residuals(net, weight, d)
            k = int(np.argmin(res))
            if level == 0:
                edge = bool(np.abs(d[k] - centre).max() >= span - 1e-12)
            if res[k] < best_res:
                best, best_res = d[k], float(res[k])
            centre, span = best, span / 6.0
        return best, best_res, edge

    def check(self, total: np.ndarray, stated: EnergyGrid) -> AxisVerdict:
        """Search the axis of `total` (counts on `stated`'s channels) around `stated`: first
        one shift for the whole axis (zero), then one per anchor (zero and gain) around it,
        kept only where it fits MIN_GAIN_SLOPE better: a spectrum whose counts sit in one
        line (Ca K on the M6 spectrum) pins one energy, not the slope."""
        y = Rebinner(stated, self.grid)(np.asarray(total, np.float32).reshape(1, -1))
        net = np.asarray(self.run(OUTPUTS, {"spectra": y})[0][0], np.float64)
        raw = y[0, self.first:self.first + self.window].astype(np.float64)
        weight = 1.0 / np.maximum(raw, 1.0)  # Poisson: a channel's variance is its count
        base = float(self.residuals(net, weight, np.zeros((1, 2)))[0])
        best, best_res, off_range = self._search(net, weight, np.zeros(2),
                                                 MAX_SHIFT_EV / 1000.0, both=False)
        two, two_res, _ = self._search(net, weight, best, SLOPE_SPAN_EV / 1000.0, both=True)
        if two_res <= (1.0 - MIN_GAIN_SLOPE) * best_res:
            best, best_res = two, two_res
        drop = 1.0 - best_res / base if base > 0 else 0.0
        state = "off_range" if off_range else ("locked" if drop >= MIN_GAIN else "kept")
        served = shifted(stated, self.anchors_kev, *best) if state == "locked" else stated
        return AxisVerdict(state, stated, served, self.anchors_kev,
                           (float(best[0]) * 1000.0, float(best[1]) * 1000.0), drop,
                           float(np.sum(total)))


class AxisLock:
    """One scan's check: sums its first pixels until MIN_COUNTS (or MAX_HELD pixels), then
    decides once."""

    def __init__(self, check: AxisCheck, stated: EnergyGrid) -> None:
        self.check, self.stated = check, stated
        self.total = np.zeros(stated.channels, np.float64)
        self.pixels = 0
        self.verdict: AxisVerdict | None = None

    @property
    def ready(self) -> bool:
        return self.total.sum() >= self.check.min_counts or self.pixels >= MAX_HELD

    def add(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts).reshape(-1, self.stated.channels)
        self.total += counts.sum(axis=0, dtype=np.float64)
        self.pixels += len(counts)

    def decide(self) -> AxisVerdict:
        """The verdict on what was summed (once; later calls return the same). Below
        MIN_COUNTS the stated axis is served: the search would follow the noise."""
        if self.verdict is None:
            if self.total.sum() >= self.check.min_counts:
                try:
                    self.verdict = self.check.check(self.total, self.stated)
                except Exception as e:  # a scan's previews never wait on a failed check
                    self.verdict = self._stated("check_failed", f"{type(e).__name__}: {e}")
            else:
                self.verdict = self._stated("too_few_counts")
        return self.verdict

    def _stated(self, state: str, error: str = "") -> AxisVerdict:
        """A verdict that serves the stated axis without a search result."""
        return AxisVerdict(state, self.stated, self.stated, self.check.anchors_kev, (0.0, 0.0),
                           0.0, float(self.total.sum()), error)

    def status(self) -> dict:
        if self.verdict is not None:
            return self.verdict.to_dict()
        return {"state": "summing", "counts": round(float(self.total.sum())),
                "pixels": self.pixels, "needs_counts": round(self.check.min_counts)}


def decide_in_order(check: AxisCheck, counts: np.ndarray, stated: EnergyGrid) -> AxisVerdict:
    """What the daemon decides for a scan whose pixels (N, C) arrive in this order: the
    verdict on its first pixels up to MIN_COUNTS (offline evaluation serves as the edge)."""
    lock = AxisLock(check, stated)
    need = np.cumsum(np.asarray(counts).sum(axis=1, dtype=np.float64)) < check.min_counts
    lock.add(counts[:min(int(need.sum()) + 1, MAX_HELD)])
    return lock.decide()


def load_check(bundle: Bundle, runtime: Callable[[bytes], NetFn]) -> AxisCheck | None:
    """The axis check an elements bundle declares (hash-checked; `runtime` makes a NetFn of
    the graph's bytes), else None."""
    entry = bundle.manifest.domain.get(AXIS_KEY)
    if entry is None:
        return None
    path = bundle.folder / str(entry.get("file", AXIS_FILE))
    if not path.is_file():
        raise BundleError(f"missing {path.name} (the manifest declares an energy-axis check)")
    data = path.read_bytes()
    if sha256_bytes(data) != entry.get("sha256"):
        raise BundleError(f"{path.name}: sha256 does not match the manifest's (file changed "
                          "or corrupted since export)")
    try:
        run = runtime(data)
    except Exception as e:  # a runtime's own error types for a graph it cannot load
        raise BundleError(f"cannot load {path.name} ({e})") from None
    try:
        e1, e2 = (float(e) for e in entry["anchors_kev"])
        return AxisCheck(run, bundle.manifest.grid, (e1, e2), int(entry["first"]))
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"energy_axis entry unusable ({e})") from None
    except Exception as e:  # the runtime's, running a graph that does not fit the entry
        raise BundleError(f"{path.name} does not run as an energy-axis check ({e})") from None
