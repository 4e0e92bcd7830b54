"""Held-out scores of an element bundle against PyMca, and the table a conservator reads.

Per element and method: Pearson r (1 = the same map pattern as PyMca's) and relative RMSE
(the typical per-pixel difference as a share of PyMca's mean). Where another detector saw the
same pixels, PyMca on that detector against PyMca on this one is the repeat-measurement floor:
no map can agree with PyMca better than two measurements of the same paint agree with each
other. Detector elements differ in solid angle and window, so the floor is given both raw and
gain-matched (one least-squares factor per element between the detectors); the checks use
the gain-matched one, the stricter.

An element has real signal when PyMca finds it above 3 sigma (the compiled fit's counting
statistics; its detection sigma where the fit fixed the element at zero, so a zero the fit
is sure of no longer makes any positive PyMca value "signal") in at least SIGNAL_SHARE of the
held-out pixels; the checks cover those only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.metrics import element_errors

SIGNAL_SHARE = 0.10
FAST, RESIDUAL, ROI, RECAL = "fast fit", "fast fit + residual", "ROI", "fast fit, own calib."
FLOOR, FLOOR_GAIN = "floor (det. vs det.)", "floor, gain-matched"
R_TIE = 5e-4  # r is compared as printed (3 decimals)


@dataclass
class HeldOut:
    """One held-out set: PyMca's maps on it and what each method predicted."""

    name: str
    outputs: tuple[str, ...]
    reference: np.ndarray  # (N, G) PyMca, counts/s
    sigma: np.ndarray  # (N, G) the compiled fit's 1-sigma, counts/s
    preds: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, G)
    repeat: np.ndarray | None = None  # (N, G) PyMca on another detector, same pixels
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.reference)


def gain_matched(repeat: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`repeat` scaled per column by the least-squares factor onto `reference`."""
    num = (repeat.astype(np.float64) * reference).sum(axis=0)
    den = (repeat.astype(np.float64) ** 2).sum(axis=0)
    return repeat * np.where(den > 0, num / np.maximum(den, 1e-300), 1.0)


def signal(reference: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(G,) bool: PyMca above 3 sigma in at least SIGNAL_SHARE of the pixels."""
    return ((reference > 3 * sigma).mean(axis=0) >= SIGNAL_SHARE)


def score(h: HeldOut) -> dict:
    """JSON-ready: per element its signal, PyMca's mean and per method {pearson_r, rel_rmse}."""
    rows = dict(h.preds)
    if h.repeat is not None:
        rows[FLOOR] = h.repeat
        rows[FLOOR_GAIN] = gain_matched(h.repeat, h.reference)
    has = signal(h.reference, h.sigma)
    out: dict = {"name": h.name, "spectra": h.n, "note": h.note, "elements": {}}
    for j, el in enumerate(h.outputs):
        ref = h.reference[:, j]
        entry: dict = {"signal": bool(has[j]), "pymca_mean": float(ref.mean()),
                       "above_3_sigma": float((ref > 3 * h.sigma[:, j]).mean())}
        for method, pred in rows.items():
            e = element_errors(ref, pred[:, j])
            entry[method] = {"pearson_r": e["pearson_r"], "rel_rmse": e["rel_rmse"]}
        out["elements"][el] = entry
    out["checks"] = checks(out)
    return out


def _ge(a: float, b: float, tie: float = R_TIE) -> bool:
    return bool(np.isfinite(a) and (not np.isfinite(b) or a >= b - tie))


def checks(s: dict) -> dict:
    """Per element with signal: fast fit r >= ROI r; + residual r >= fast fit r; fast fit
    (or with residual) relative RMSE within the gain-matched floor, where there is one."""
    out = {}
    for el, e in s["elements"].items():
        if not e["signal"]:
            continue
        c = {"fast_fit_r_ge_roi": _ge(e[FAST]["pearson_r"], e[ROI]["pearson_r"])}
        if RECAL in e:
            c["recalibrated_r_ge_roi"] = _ge(e[RECAL]["pearson_r"], e[ROI]["pearson_r"])
        if RESIDUAL in e:
            c["residual_r_ge_fast_fit"] = _ge(e[RESIDUAL]["pearson_r"], e[FAST]["pearson_r"])
        if FLOOR_GAIN in e:
            best = min(e[m]["rel_rmse"] for m in (FAST, RESIDUAL) if m in e)
            c["rel_rmse_within_floor"] = bool(best <= e[FLOOR_GAIN]["rel_rmse"])
        out[el] = c
    return out


def methods(s: dict) -> list[str]:
    first = next(iter(s["elements"].values()), {})
    order = [FAST, RESIDUAL, RECAL, ROI, FLOOR, FLOOR_GAIN]
    return [m for m in order if m in first]


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def rows(s: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per element, r and relative RMSE per method, and the checks."""
    ms = methods(s)
    header = ["element", "PyMca c/s", ">3σ px"] + [f"{m} r / rel.RMSE" for m in ms] + ["checks"]
    body = []
    for el, e in s["elements"].items():
        ok = s["checks"].get(el)
        verdict = "no signal" if ok is None else ", ".join(
            f"{_CHECK[k]} {'yes' if v else 'NO'}" for k, v in ok.items())
        body.append([el, f"{e['pymca_mean']:,.1f}", f"{e['above_3_sigma']:.0%}"]
                    + [f"{_fmt(e[m]['pearson_r'])} / {_fmt(e[m]['rel_rmse'])}" for m in ms]
                    + [verdict])
    return header, body


_CHECK = {"fast_fit_r_ge_roi": "r≥ROI", "recalibrated_r_ge_roi": "own calib. r≥ROI",
          "residual_r_ge_fast_fit": "res.≥fit",
          "rel_rmse_within_floor": "≤floor"}
LEGEND = ("r: 1 = the same map pattern as PyMca's; rel.RMSE: typical per-pixel difference "
          "from PyMca as a share of its mean (0.10 = 10 %); >3σ px: share of pixels where "
          "PyMca finds the element above 3 sigma; the floor compares two detectors that saw "
          "the same pixels (no map can beat it).")


def text_table(s: dict) -> str:
    """The console table: fixed-width columns, a title line and the legend."""
    header, body = rows(s)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    title = f"{s['name']} ({s['spectra']} spectra) against PyMca"
    parts = [title, line(header), "  ".join("-" * w for w in widths), *map(line, body)]
    if s.get("note"):
        parts.append(s["note"])
    return "\n".join(parts)


def md_table(s: dict) -> str:
    header, body = rows(s)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(out)


def summary(scores: list[dict]) -> str:
    """One line per held-out set: how many checks pass, which fail."""
    lines = []
    for s in scores:
        failed = [f"{el} {_CHECK[k]}" for el, c in s["checks"].items() for k, v in c.items()
                  if not v]
        total = sum(len(c) for c in s["checks"].values())
        if not total:
            lines.append(f"{s['name']}: no element with real signal, nothing to check")
            continue
        lines.append(f"{s['name']}: {total - len(failed)}/{total} checks pass"
                     + (f"; missed: {', '.join(failed)}" if failed else ""))
    return "\n".join(lines)
