"""Report section 1b, diagnostics: where a model's R² difference between the lab's path and
the aligned photograph comes from (possible only in simulation, where the camera is known).

The models that differ by more than 0.02 (kNN always) are trained again, seed 0, on the
training scan with its photograph replaced by a variant, and scored on the held-out scene's
aligned photograph (the truth): camera 0's registered photograph with its exposure, or all
its light (a perfect flat field), divided out; the aligned photograph under the camera's
exposure (and a brighter one), and averaged over the beam's footprint (what the spectra see)
instead of each pixel's square.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter

from proto.dataset import open_dataset
from training import camera, lab_rgb
from training.config import TrainConfig
from training.lab_figures import LABELS
from training.metrics import r2_rgb
from training.photo import FWHM_PER_SIGMA, spot_px_of, store_photo, to_srgb8
from training.pigments import srgb_to_linear
from training.report import md_table

if TYPE_CHECKING:
    from training.report.lab_rgb import Comparison

ALIGNED, REGISTERED = "aligned (the reference)", "registered (the lab's path)"
NO_EXPOSURE = "registered, the camera's exposure divided out"
FLAT = "registered, all the camera's light divided out (a perfect flat field)"
EXPOSED = f"aligned x {camera.EXPOSURE:g} (the camera's exposure alone)"
BRIGHTER = f"aligned x {2 - camera.EXPOSURE:g} (a brighter exposure)"


def beam_photo(train_src: Path) -> tuple[np.ndarray, float]:
    """The training scene's colours (linear) averaged over the beam's footprint, and the
    spot's FWHM in scan pixels."""
    name = train_src.stem.removesuffix("_tiny")
    fine, r = camera.scene_raster(name, train_src.stem.endswith("_tiny"))
    with open_dataset(train_src) as ds:
        spot = spot_px_of(ds.scan, ds.instrument)
    fine = gaussian_filter(fine, (spot * r / FWHM_PER_SIGMA,) * 2 + (0,), mode="nearest",
                           truncate=3.0)
    m = camera.MARGIN * r
    inner = fine[m:fine.shape[0] - m, m:fine.shape[1] - m]
    h, w = inner.shape[0] // r, inner.shape[1] // r
    return inner.reshape(h, r, w, r, 3).mean(axis=(1, 3)), spot


def linear_photo(path: Path) -> np.ndarray:
    with open_dataset(path) as ds:
        return srgb_to_linear(np.asarray(ds.photo_rgb) / 255.0)


def diagnostics(c: Comparison, train_src: Path, test_src: Path | None, work: Path,
                cfg: TrainConfig | None = None) -> dict:
    """{"models": [...], "r2": {variant: {model: R² on the truth}}, "spot_px": FWHM}."""
    rows = c.rows()
    names = ["knn10"] + [n for n, r in rows.items() if abs(r["r2_diff"]) > 0.02 and n != "knn10"]
    names = [n for n in names if n in c.lab[0].candidates]
    reg = c.registered[0][train_src.stem]
    registered, aligned = linear_photo(reg.dataset), linear_photo(train_src)
    beam, spot = beam_photo(train_src)
    variants = {
        NO_EXPOSURE: registered / camera.EXPOSURE,
        FLAT: registered / reg.shot.light_on_scan()[..., None],
        EXPOSED: aligned * camera.EXPOSURE,
        BRIGHTER: aligned * (2 - camera.EXPOSURE),
        f"aligned, averaged over the beam spot ({spot:g} px FWHM)": beam,
    }
    r2 = {ALIGNED: {n: c.aligned[0].candidates[n].metrics["r2"] for n in names},
          REGISTERED: {n: r2_rgb(c.truth, c.lab[0].candidates[n].pred) for n in names}}
    for i, (label, lin) in enumerate(variants.items()):
        path = work / "diagnostics" / f"{i}_{train_src.name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(train_src, path)
        store_photo(path, to_srgb8(np.clip(lin, 0, 1)), {})
        print(f"# diagnostics: {label}", flush=True)
        res = lab_rgb.run([path], tests=[test_src] if test_src else [], names=names, cfg=cfg)
        r2[label] = {n: r2_rgb(c.truth, res.candidates[n].pred) for n in names}
    return {"models": names, "r2": r2, "spot_px": spot}


def diag_text(diag: dict) -> list[str]:
    """The diagnostics' table and what it says, for the report."""
    names, r2 = diag["models"], diag["r2"]
    beam = next(k for k in r2 if k.startswith("aligned, averaged over the beam"))
    rows = [[label, *(f"{r2[label][n]:.3f}" for n in names)] for label in r2]
    gap = {n: r2[NO_EXPOSURE][n] - r2[ALIGNED][n] for n in names}
    exp = {n: r2[EXPOSED][n] - r2[ALIGNED][n] for n in names}
    bright = {n: r2[BRIGHTER][n] - r2[ALIGNED][n] for n in names}
    foot = {n: r2[beam][n] - r2[ALIGNED][n] for n in names}
    flat = {n: r2[FLAT][n] - r2[ALIGNED][n] for n in names}

    def each(d: dict[str, float]) -> str:
        return ", ".join(f"{LABELS[n]} {v:+.3f}" for n, v in d.items())

    return [
        "", "Where the differences come from (known only in simulation; seed 0, camera 0; "
        "each model trained on `m1_virgin` with the photograph below, R² on `m1_child`'s "
        "aligned photograph):\n",
        md_table(["training photograph", *(LABELS[n] for n in names)], rows), "",
        f"- The camera's exposure ({camera.EXPOSURE:g}, a global gain that keeps the lit side "
        "of the panel unclipped) is learnt as part of the colours: the aligned photograph x "
        f"{camera.EXPOSURE:g} alone moves R² by {each(exp)}, x {2 - camera.EXPOSURE:g} by "
        f"{each(bright)}"
        + ("; on these scenes a darker target happens to score higher. " if all(
            v > 0 for v in exp.values()) else ". ")
        + "With the exposure divided out the lab's path differs from the aligned reference by "
        f"{each(gap)} ({'all' if all(abs(v) <= 0.02 for v in gap.values()) else 'not all'} "
        "within 0.02); with all the camera's light divided out (a perfect flat field) by "
        f"{each(flat)}. The aligned photograph averaged over the beam spot instead of each "
        "pixel's square (nearer what the spectra see; the camera's optics, JPEG and the "
        "registration's residual error soften the registered colours likewise) moves R² by "
        f"{each(foot)}.",
        ("- So the path itself (clicked corners, refinement, footprint resampling) costs no "
         "accuracy; " if all(v >= -0.02 for v in gap.values()) else
         "- The path itself loses more than 0.02 for some model (see the table); ")
        + "a model learns the photograph's exposure, which a lab fixes with a grey "
        "card or a flat-field frame. Flattening the light from the scan itself (pixels with "
        "alike spectra should look alike; a low-order polynomial of position fitted to their "
        "colour ratios) was tried and is not used: it takes the faded and darkened regions "
        "of `m1_child`, alike in XRF but not in colour, for light (R² of the registered to "
        "the aligned photograph 0.965 -> 0.890).",
    ]
