"""The figures of `python -m training.lab_rgb`: a JSON of every number, a Markdown table and
a PNG of the held-out area (photograph beside each model's prediction)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.jsonutil import jsonable

LabResult = Any  # training.lab_rgb.LabResult (not imported: lab_rgb imports this module)
LABELS = {"knn10": "kNN k=10 (study's best)", "encoder": "encoder (study)",
          "mlp_dwell": "MLP + dwell augmentation (ours)",
          "mlp_library": "MLP + pigment library (ours)"}  # the models training.lab_rgb trains

GREY = 0.5  # pixels outside the held-out area in the PNG


def table(result: LabResult) -> str:
    rows = ["| model | R² | ΔE2000 median | ΔE2000 p95 | fit s | note |",
            "|---|---|---|---|---|---|"]
    for name, c in result.candidates.items():
        m = c.metrics
        mark = " **(exported)**" if name == result.best else ""
        rows.append(f"| {LABELS[name]}{mark} | {m['r2']:.3f} | {m['delta_e_median']:.2f} | "
                    f"{m['delta_e_p95']:.2f} | {c.fit_s:.1f} | {c.note} |")
    return "\n".join(rows)


def summary(result: LabResult) -> dict:
    """Every figure of a run, JSON-ready."""
    return {
        "best": result.best, "best_ours": result.best_ours,
        "models": {n: {**c.metrics, "fit_s": c.fit_s, "note": c.note}
                   for n, c in result.candidates.items()},
        "parts": [{"scene": p.scene.name, "train_pixels": len(p.train),
                   "held_out_pixels": len(p.test), "area": p.area} for p in result.parts],
        "training_scans": result.info["train_data"]["datasets"],
    }


def held_out_images(result: LabResult) -> list[tuple[str, np.ndarray]]:
    """(title, (h, w, 3) image) of the first scan with held-out pixels: its photograph and
    each model's prediction, cropped to the held-out pixels' bounding box."""
    # gather() concatenates the parts in order: the first with held-out pixels starts at 0
    p = next(p for p in result.parts if len(p.test))
    h, w = p.scene.shape
    rows, cols = np.unravel_index(p.test, (h, w))
    box = np.s_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    sel = slice(0, len(p.test))

    def paint(values: np.ndarray) -> np.ndarray:
        img = np.full((h * w, 3), GREY, np.float32)
        img[p.test] = values
        return img.reshape(h, w, 3)[box]

    out = [(f"photograph ({p.scene.name})", paint(result.truth[sel]))]
    for name, c in result.candidates.items():
        out.append((f"{name}\nR² {c.metrics['r2']:.2f}", paint(c.pred[sel])))
    return out


def write_figures(result: LabResult, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "lab_rgb.json").write_text(json.dumps(jsonable(summary(result)), indent=1) + "\n")
    areas = "; ".join(f"{p.scene.name}: {len(p.train)} training / {len(p.test)} held-out "
                      f"pixels ({p.area})" for p in result.parts)
    (out / "lab_rgb.md").write_text(
        "# RGB models from lab scans\n\n" + areas + "\n\nR² (the study's score, uniform over "
        "R, G, B) and CIEDE2000 to the registered photograph on the held-out pixels.\n\n"
        + table(result) + "\n\n![held-out area](lab_rgb.png)\n")
    panels = held_out_images(result)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.6), squeeze=False)
    for ax, (title, img) in zip(axes[0], panels, strict=True):
        ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "lab_rgb.png", dpi=80)
    plt.close(fig)
