"""Report section 4, "Real spectra": the element maps on the real files in ../shared/data.

    python -m export.real_spectra [--real ../shared/data] [--out reports] [--models models]
        [--quick]

Writes reports/real_spectra.md and puts the same text into reports/REPORT.md as its section 4
(replaced in place when `make report` has written the rest; `make report` runs this after
training.report). It lives in export/ because it runs the compiled fast fit (export.fastfit),
which training may not import.

* M6 Jetstream spectrum (one spectrum, 28 s live): PyMca's fast fit with the shipped m6.cfg,
  the compiled fast fit of the same configuration, the default element bundle (fast fit +
  residual, models/elements) when one is there, and ROI sums whose gain comes from PyMca's own
  unit line responses (there are no lab maps of this instrument to fit a gain on); then the
  same at a 100 ms pixel (Poisson resamples) against PyMca's 28 s value, PyMca's own
  fast fit of the resamples being the repeat-measurement floor.
* IXRF ATLAS map: `make calibrate` with detector 0, judged on its held-out columns and on
  detector 1 (the floor: PyMca detector 0 vs detector 1, same pixels).
* APS 2-ID-E scan (10 keV monochromatic): `make calibrate` with element a, judged on its
  held-out rows and on elements b, c, d (floors: PyMca a vs each).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from export import calib_eval as ev
from export.calib_bundle import Served
from export.calibrate import calibrate
from export.element_bundle import FitOnGrid
from export.fastfit import build_model, configured_fit, family, pymca_fast_fit
from proto.bundle import BundleError, read_manifest
from proto.continuum import READY_PIXELS
from proto.elements import LINE_GROUP
from proto.energy import EnergyGrid
from training.labels import CONFIG_DIR, INSTRUMENTS_DIR, load_config
from training.preprocess import rates_from_counts
from training.roi import roi_sums

SPX = "bruker_m6_jetstream_example.spx"
IXRF = "ixrf_atlas/ts2_01_sub_export.GeoPIXE"
APS = "aps_2ide/2xfm_0011_2xfm3__0.h5"
M6_LIVE_S = 28.05  # the file's live time (README of the data folder)
RESAMPLE_S, RESAMPLES = 0.1, 200
HEAD = "## 4. Real spectra"


def m6_spectrum(real: Path) -> tuple[np.ndarray, EnergyGrid, float]:
    from training.readers import read

    scan = read(real / SPX)
    live = float(np.asarray(scan.live_time_s).reshape(-1)[0])
    return np.asarray(scan.counts, np.float64).reshape(-1), scan.grid, live


def model_roi_gain(cfg, grid: EnergyGrid, outputs: tuple[str, ...]) -> np.ndarray:
    """ROI gain without training maps: 1 / the ROI sum of each element's unit-area line family
    as PyMca models it (Au/Hg/Pb L unsplit, so PyMca's own L1:L2:L3 ratios hold)."""
    c = copy.deepcopy(cfg)
    for el, groups in list(c["peaks"].items()):
        if isinstance(groups, list) and any(g.startswith("L") for g in groups):
            c["peaks"][el] = ["L", *[g for g in groups if not g.startswith("L")]]
    model = build_model(c, grid.channels, outputs=outputs)
    unit = np.zeros((len(outputs), grid.channels))
    for j, el in enumerate(outputs):
        cols = [k for k, n in enumerate(model.names) if family(n) == f"{el} {LINE_GROUP[el]}"]
        unit[j, model.first:model.first + model.window] = model.derivatives[:, cols].sum(axis=1)
    sums = np.diag(roi_sums(rates_from_counts(unit, np.ones(len(outputs)), grid), outputs))
    return np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), np.nan)


def m6_section(real: Path, models: Path) -> tuple[str, dict]:
    y, grid, live = m6_spectrum(real)
    cfg = load_config(CONFIG_DIR / "m6.cfg", grid)
    fitter = configured_fit(cfg)
    model = build_model(cfg, grid.channels, fitter=fitter)
    outputs = model.outputs
    fit = FitOnGrid(model, grid)
    names, areas, _ = pymca_fast_fit(y[None], cfg, fitter=fitter)
    pymca = _outputs(model, names, areas)[0] / live
    ours, sigma = fit(y[None] / live, np.array([live]))
    gain = model_roi_gain(cfg, grid, outputs)
    roi = roi_sums(rates_from_counts(y[None], np.array([live]), grid), outputs)[0] * gain
    bundle, bundle_note = _default_bundle(models, outputs)
    served = None if bundle is None else bundle(y[None], np.array([live]), grid, outputs)[0]
    if bundle is not None and bundle.verdict is not None:
        bundle_note += f" {bundle.verdict.line()}"
    # a 100 ms pixel: Poisson resamples against PyMca's 28 s value
    rng = np.random.default_rng(0)
    short = rng.poisson(y * RESAMPLE_S / live, (RESAMPLES, y.size)).astype(np.float64)
    lt = np.full(RESAMPLES, RESAMPLE_S)
    names, areas, _ = pymca_fast_fit(short, cfg, per_pixel=False, fitter=fitter)
    rows = {"PyMca fast fit (whole batch)": _outputs(model, names, areas) / RESAMPLE_S,
            ev.FAST: fit(short / RESAMPLE_S, lt)[0],
            ev.ROI: roi_sums(rates_from_counts(short, lt, grid), outputs) * gain}
    if bundle is not None:  # streamed as a scan: its continuum serves from READY_PIXELS on
        out, n = bundle(short, lt, grid, outputs), READY_PIXELS
        rows[f"{ev.RESIDUAL}, pixels 1-{n} (each pixel's SNIP)"] = out[:n]
        rows[f"{ev.RESIDUAL}, pixels {n + 1}-{RESAMPLES} (the scan's continuum where chosen)"] \
            = out[n:]
        n_in = int(bundle.inside(np.vstack([y[None], short]), np.append(live, lt), grid).sum())
        bundle_note += (f" Its residual is served only inside its training domain (simulated "
                        f"M6 spectra): here on {n_in} of the {1 + RESAMPLES} spectra, so "
                        "elsewhere that row is the fast fit, as the edge serves and says it.")
    sigma_short = fit(short / RESAMPLE_S, lt)[1].mean(axis=0)
    found = pymca > 3 * sigma[0]
    head = ["element", "PyMca c/s", "σ c/s", "fast fit", ev.RESIDUAL, "ROI (model gain)",
            "fast fit within 1 % or 0.5σ"]
    body = []
    for j, el in enumerate(outputs):
        ok = abs(ours[0, j] - pymca[j]) <= max(0.01 * abs(pymca[j]), 0.5 * sigma[0, j])
        body.append([el, f"{pymca[j]:,.1f}", f"{sigma[0, j]:.1f}", f"{ours[0, j]:,.1f}",
                     "n/a" if served is None else f"{served[j]:,.1f}", f"{roi[j]:,.1f}",
                     "yes" if ok else "NO"])
    head2 = [f"{RESAMPLE_S * 1e3:.0f} ms pixel: mean ± sd, c/s", *outputs]
    body2 = [["PyMca at 28 s", *(f"{v:,.1f}" for v in pymca)],
             ["compiled σ at 100 ms", *(f"{v:,.1f}" for v in sigma_short)]]
    body2 += [[m, *(f"{a:,.1f} ± {b:,.1f}" for a, b in zip(p.mean(axis=0), p.std(axis=0),
                                                        strict=True))] for m, p in rows.items()]
    text = "\n".join([
        f"### Bruker M6 Jetstream spectrum (`{SPX}`, {live:.2f} s live)\n",
        f"One spectrum, so no map statistics: the values themselves, in counts per live second; "
        f"σ from counting statistics through the compiled fit (for an element the fit fixes at "
        f"zero, as As here, its detection σ: that of its estimate in the full fit, 3σ being "
        f"the detection limit). ROI's gain comes from PyMca's own "
        f"unit line responses (no lab maps of this instrument to fit one on). {bundle_note}\n",
        _md(head, body), "",
        f"The same spectrum as a {RESAMPLE_S * 1e3:.0f} ms pixel ({RESAMPLES} Poisson "
        "resamples, as a map pixel would see it): mean and spread of each method against "
        "PyMca's 28 s value; the spread of PyMca's own fit of the resamples is the "
        "repeat-measurement floor, and the compiled σ predicts it (except for a value fixed "
        "at zero, whose clipped spread is narrower than its detection σ).\n",
        _md(head2, body2)])
    return text, {"pymca": pymca.tolist(), "fast_fit": ours[0].tolist(),
                  "within_bar": [r[-1] == "yes" for r in body], "outputs": list(outputs),
                  "found": found.tolist()}


def _outputs(model, names, areas) -> np.ndarray:
    rows = np.array([[float(family(n) == f"{e} {LINE_GROUP[e]}") for n in names]
                     for e in model.outputs])
    return areas @ rows.T


def _default_bundle(models: Path, outputs: tuple[str, ...]) -> tuple[Served | None, str]:
    folder = models / "elements"
    try:
        m = read_manifest(folder)
    except (BundleError, FileNotFoundError, OSError):
        return None, f"No element bundle in `{folder}` (`make train export`): no residual row."
    if not set(outputs) <= set(m.outputs) or not m.extra_inputs:
        return None, (f"`{folder}` is not a fast fit + residual bundle of these elements "
                      f"({m.training.get('model', '?')}): no residual row.")
    return Served(folder), f"Fast fit + residual: the default bundle in `{folder}`."


def _md(head: list[str], body: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in body)])


def scan_section(title: str, summary: dict, command: str) -> str:
    cal = summary["calibration"]
    parts = [f"### {title}\n", f"`{command}` ({summary['wall_s']:.0f} s). Bundle serves "
             f"{summary['serves']}; residual: {summary['residual']}."
             + (" PyMca's refined calibration on the training pixels: " + ", ".join(
                 f"{k} {v:.5g}" for k, v in cal.items() if isinstance(v, float)) + "."
                if cal else "") + "\n"]
    first = summary["held_out"][0]
    total = sum(e["pymca_mean"] for e in first["elements"].values())
    for s in summary["held_out"]:
        share = sum(e["pymca_mean"] for e in s["elements"].values()) / max(total, 1e-12)
        note = "" if s is first else (f" This detector's PyMca total over the elements is "
                                      f"{share:.0%} of the calibrating detector's.")
        parts += [f"**{s['name']}**, {s['spectra']} spectra, against PyMca on them.{note}\n",
                  ev.md_table(s), ""] + ([s["note"] + "\n"] if s.get("note") else [])
    parts.append(ev.summary(summary["held_out"]).replace("\n", "  \n"))
    return "\n".join(parts)


def run(real: Path, models: Path, quick: bool) -> tuple[str, dict]:
    t0 = time.perf_counter()
    texts, data = [], {}
    m6, data["m6"] = m6_section(real, models)
    texts.append(m6)
    flags = " --quick" if quick else ""
    with tempfile.TemporaryDirectory() as tmp:
        for key, toml, scan, det, tests, title in (
                ("ixrf", "ixrf_atlas", IXRF, "0", ["1"],
                 "IXRF ATLAS map (20 x 10 pixels, two detectors, 100 ms)"),
                ("aps", "aps_2ide", APS, "a", ["b", "c", "d"],
                 "APS 2-ID-E scan (11 x 9 pixels, four detector elements, 10 keV)")):
            s = calibrate(INSTRUMENTS_DIR / f"{toml}.toml", [real / scan], Path(tmp) / key,
                          detector=det, test_detectors=tests, quick=quick, progress=False)
            cmd = (f"python -m export.calibrate training/instruments/{toml}.toml "
                   f"../shared/data/{scan} --detector {det} --test-detector {' '.join(tests)}"
                   f"{flags}")
            texts.append(scan_section(title, s, cmd))
            data[key] = s
    wall = time.perf_counter() - t0
    intro = (f"{HEAD}\n\nGenerated by `python -m export.real_spectra{flags}` from the real "
             f"files in ../shared/data (wall time {wall:.0f} s). Every reference is PyMca's "
             "fast fit run as its user runs it on the same pixels (calibration refined on their "
             "sum spectrum). Legend: " + ev.LEGEND + "\n")
    return intro + "\n" + "\n\n".join(texts) + "\n", data


def splice(report: Path, section: str) -> None:
    """Put `section` into REPORT.md in place of an earlier section 4, else at the end."""
    text = report.read_text() if report.exists() else "# Training and evaluation report\n"
    pattern = re.compile(rf"^{re.escape(HEAD)}.*?(?=^## (?!4\.)|\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    report.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.real_spectra", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, default=Path("../shared/data"), help="real files")
    ap.add_argument("--out", type=Path, default=Path("reports"), help="report folder")
    ap.add_argument("--models", type=Path, default=Path("models"),
                    help="models folder holding the default element bundle")
    ap.add_argument("--quick", action="store_true", help="coarse tube continuum in PyMca")
    a = ap.parse_args(argv)
    if not (a.real / SPX).exists():
        print(f"real spectra skipped: no {a.real / SPX}", file=sys.stderr)
        return 0
    text, _ = run(a.real, a.models, a.quick)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "real_spectra.md").write_text(text)
    splice(a.out / "REPORT.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
