"""A scene's PNG: photograph, original colour with the truth masks, the most varied element
maps, and the sum spectrum with the mapped elements' lines (written next to each dataset file
by `python -m training.scenes`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from proto.elements import ELEMENTS
from proto.energy import EnergyGrid


def _line_energies() -> dict[str, float]:
    import xraylib

    out = {}
    for e in ELEMENTS:
        z = xraylib.SymbolToAtomicNumber(e)
        line = xraylib.KA1_LINE if z <= 33 else xraylib.LA1_LINE
        out[e] = xraylib.LineEnergy(z, line)
    return out


def save_png(path: Path, title: str, photo: np.ndarray, original: np.ndarray,
             maps: dict[str, np.ndarray], masks: dict[str, np.ndarray], grid: EnergyGrid,
             total: np.ndarray) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted(maps, key=lambda e: -float(np.std(maps[e])))[:4]
    fig = plt.figure(figsize=(16, 8), constrained_layout=True)
    grid_spec = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid_spec[0, 0])
    image_axes = [ax]
    ax.imshow(photo)
    ax.set_title("photograph")
    ax = fig.add_subplot(grid_spec[0, 1])
    image_axes.append(ax)
    ax.imshow(original)
    colours = {"faded": "magenta", "darkened_varnish": "yellow", "overpaint": "cyan",
               "novel": "lime"}
    for k, m in masks.items():
        if m.any():
            ax.contour(m.astype(float), levels=[0.5], colors=colours[k], linewidths=1)
    ax.set_title("original RGB (masks: faded m, varnish y, overpaint c, novel g)", fontsize=8)
    for i, e in enumerate(shown):
        ax = fig.add_subplot(grid_spec[(2 + i) // 4, (2 + i) % 4])
        image_axes.append(ax)
        im = ax.imshow(maps[e], cmap="inferno")
        fig.colorbar(im, ax=ax, shrink=0.8, label="counts/s")
        ax.set_title(f"{e} (ground truth)")
    for a in image_axes:
        a.set_xticks([])
        a.set_yticks([])
    ax = fig.add_subplot(grid_spec[1, 2:])
    energy = grid.centres()
    ax.semilogy(energy, np.maximum(total, 0.5), lw=0.7, color="k")
    for e, kev in _line_energies().items():
        ax.axvline(kev, color="tab:red", lw=0.5, alpha=0.6)
        ax.text(kev, ax.get_ylim()[1], e, rotation=90, va="top", ha="right", fontsize=7)
    ax.set_xlim(0, min(energy[-1], 40))
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts (sum of all pixels)")
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

