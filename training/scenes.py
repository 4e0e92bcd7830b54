"""Named, deterministic simulated scans: the study's two experiments as dataset files.

    python -m training.scenes --out data [--only NAME] [--tiny] [--dwell-s S]

| scene            | instrument | spot   | pixels (H x W)                   | dwell  | role    |
|------------------|------------|--------|----------------------------------|--------|---------|
| m1_virgin        | M1 Mistral | 1 mm   | 65 x 41 = 2665                   | 1 s    | 1 train |
| m1_child         | M1 Mistral | 2 mm   | 46 x 31 = 1426                   | 1 s    | 1 test  |
| m6_corpus        | M6         | 580 um | 2 x 2 panels 245 x 245 = 240100  | 10 ms  | 2 train |
| m6_ioannis       | M6         | 580 um | 367 x 274 (width 274)            | 10 ms  | 2 test  |
| m6_ioannis_100ms | M6         | 580 um | 367 x 274                        | 100 ms | 2 test  |

(role: experiment 1 = spectra -> RGB, 2 = spectra -> element maps, SCIENCE.md)

`m1_child` holds a faded red lake, darkened varnish, an over-painted patch and a pigment absent
from `m1_virgin` (smalt: Co, As, K); its masks are in `ground_truth/masks/<name>` (see
`MASKS_GROUP`). `m6_ioannis` mixes orpiment with lead white (As K / Pb L), gold over vermilion
(Au L / Hg L) and orpiment with vermilion (As / Hg). Every scene has a tiny version (`tiny=True`,
at most 24 x 24 pixels) for tests, written as `<name>_tiny.h5`.

Each scene is a few dozen distinct layer stacks: the simulator runs once per stack, pixel
expectations are spot weights (N, S) @ stack rates (S, C), and Poisson counting runs in chunks
of 4096 pixels with an rng seeded by (scene seed, chunk index), so output does not depend on
anything but the scene name, size and dwell.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from proto.dataset import write_dataset
from proto.elements import ELEMENTS
from training.paintings import (
    MASK_NAMES,
    Alteration,
    IconSpec,
    Palette,
    Rendering,
    Stack,
    flesh_roles,
    gilding,
    paint,
    pixel_truth,
    render,
    single,
)

MASKS_GROUP = "ground_truth/masks"  # (H, W) bool datasets named as MASK_NAMES
CHUNK = 4096
SUPERSAMPLE = 3


@dataclass(frozen=True)
class SceneConfig:
    name: str
    instrument: str  # "M1" | "M6"
    spot_um: float
    pixel_um: float
    panel_shape: tuple[int, int]  # (H, W) of one panel
    layout: tuple[int, int]  # panels as (rows, cols)
    dwell_s: float
    seed: int
    tiny_panel_shape: tuple[int, int]

    @property
    def n_panels(self) -> int:
        return self.layout[0] * self.layout[1]


# ---------------------------------------------------------------- palettes

def _virgin_palette() -> Palette:
    lake = paint("mantle_lake", {"red_lake": 1.0}, thickness_um=10, opacity=0.55)
    return {
        "background": gilding(),
        "halo": gilding(),
        "halo_ring": single("halo_ring", {"vermilion": 1.0}, 15),
        "border": single("border", {"vermilion": 0.7, "red_ochre": 0.3}),
        "inscription": single("inscription", {"vermilion": 1.0}, 20),
        "mantle": (lake, paint("mantle", {"red_ochre": 0.6, "vermilion": 0.3,
                                          "bone_black": 0.1}, thickness_um=40)),
        "mantle_fold": single("mantle_fold", {"red_ochre": 0.5, "raw_umber": 0.3,
                                              "bone_black": 0.2}, 40),
        "mantle_light": (lake, paint("mantle_light", {"red_ochre": 0.5, "lead_white": 0.5},
                                     thickness_um=40)),
        "cap": single("cap", {"azurite": 0.8, "lead_white": 0.2}, 40),
        "tunic": single("tunic", {"azurite": 1.0}, 40),
        "tunic_fold": single("tunic_fold", {"azurite": 0.7, "bone_black": 0.3}, 40),
        **flesh_roles(vermilion=0.1, ochre=0.2),
    }


def _child_palette() -> Palette:
    lake = paint("himation_lake", {"red_lake": 1.0}, thickness_um=12, opacity=0.6)
    return {
        "background": gilding(),
        "halo": gilding(),
        "halo_ring": single("halo_ring", {"vermilion": 1.0}, 15),
        "inscription": single("inscription", {"vermilion": 1.0}, 20),
        "border": single("border", {"vermilion": 0.7, "red_ochre": 0.3}),
        "mantle": (lake, paint("himation", {"vermilion": 0.7, "lead_white": 0.3},
                               thickness_um=35)),
        "mantle_fold": (lake, paint("himation_fold", {"vermilion": 0.6, "red_ochre": 0.4},
                                    thickness_um=35)),
        "mantle_light": (lake, paint("himation_light", {"vermilion": 0.4, "lead_white": 0.6},
                                     thickness_um=35)),
        "chrysography": (*gilding()[:1], lake,
                         paint("himation", {"vermilion": 0.7, "lead_white": 0.3},
                               thickness_um=35)),
        "tunic": single("tunic", {"smalt": 0.8, "lead_white": 0.2}, 45),
        "tunic_fold": single("tunic_fold", {"smalt": 0.7, "bone_black": 0.3}, 45),
        **flesh_roles(vermilion=0.14, ochre=0.18),
    }


def _jitter(rng: np.random.Generator, recipe: dict[str, float], amount: float = 0.3
            ) -> dict[str, float]:
    return {k: v * float(rng.uniform(1 - amount, 1 + amount)) for k, v in recipe.items()}


def _corpus_palette(i: int, rng: np.random.Generator) -> Palette:
    """Four panels with different palettes, recipes jittered so maps take many values."""
    j = lambda r: _jitter(rng, r)  # noqa: E731
    t = lambda: float(rng.uniform(20, 60))  # noqa: E731
    flesh = flesh_roles(vermilion=float(rng.uniform(0.05, 0.18)),
                        ochre=float(rng.uniform(0.1, 0.3)))
    painted_bg = {
        0: single("bg", j({"yellow_ochre": 0.8, "lead_white": 0.2}), t()),
        1: single("bg", j({"azurite": 0.6, "bone_black": 0.2, "lead_white": 0.2}), t()),
        2: single("bg", j({"malachite": 0.5, "yellow_ochre": 0.5}), t()),
        3: single("bg", j({"red_ochre": 0.7, "lead_white": 0.3}), t()),
    }
    schemes = [
        dict(mantle={"red_ochre": 0.6, "vermilion": 0.3, "bone_black": 0.1},
             light={"red_ochre": 0.4, "lead_white": 0.6},
             tunic={"azurite": 0.9, "lead_white": 0.1}, ring={"vermilion": 1.0},
             inscription={"vermilion": 1.0}),
        dict(mantle={"malachite": 0.8, "lead_white": 0.2},
             light={"malachite": 0.4, "orpiment": 0.3, "lead_white": 0.3},
             tunic={"red_lead": 0.8, "vermilion": 0.2}, ring={"red_lead": 1.0},
             inscription={"orpiment": 1.0}),
        dict(mantle={"verdigris": 0.7, "lead_white": 0.3},
             light={"verdigris": 0.3, "lead_white": 0.7},
             tunic={"vermilion": 0.8, "red_lake": 0.2}, ring={"red_ochre": 1.0},
             inscription={"lead_white": 1.0}),
        dict(mantle={"red_lead": 0.6, "yellow_ochre": 0.4},
             light={"orpiment": 0.5, "red_lead": 0.5},
             tunic={"prussian_blue": 0.5, "lead_white": 0.5}, ring={"vermilion": 0.5,
                                                                  "red_lead": 0.5},
             inscription={"smalt": 0.8, "lead_white": 0.2}),
    ]
    s = schemes[i % len(schemes)]
    gold_bg = i in (0, 3)
    mantle = paint("mantle", j(s["mantle"]), thickness_um=t())
    return {
        "background": gilding() if gold_bg else painted_bg[i % 4],
        "halo": gilding(),
        "halo_ring": single("halo_ring", s["ring"], 15),
        "border": single("border", j({"red_ochre": 0.6, "vermilion": 0.2, "raw_umber": 0.2})),
        "inscription": single("inscription", s["inscription"], 20),
        "mantle": (mantle,),
        "mantle_fold": single("mantle_fold", j({**s["mantle"], "raw_umber": 0.3,
                                                "bone_black": 0.1}), t()),
        "mantle_light": single("mantle_light", j(s["light"]), t()),
        "chrysography": (*gilding()[:1], mantle),
        "cap": single("cap", j({"azurite": 0.7, "lead_white": 0.3}), t()),
        "tunic": single("tunic", j(s["tunic"]), t()),
        "tunic_fold": single("tunic_fold", j({**s["tunic"], "bone_black": 0.3}), t()),
        **flesh,
    }


def _ioannis_palette() -> Palette:
    """St. Ioannis: red himation with gold chrysography (Au/Hg), yellow orpiment + lead white
    tunic (As/Pb), orange orpiment + vermilion highlights (As/Hg), grey-brown hair."""
    himation = paint("himation", {"vermilion": 0.75, "red_ochre": 0.25}, thickness_um=35)
    return {
        "background": gilding(),
        "halo": gilding(),
        "halo_ring": single("halo_ring", {"red_lead": 1.0}, 15),
        "border": single("border", {"malachite": 0.7, "lead_white": 0.3}),
        "inscription": single("inscription", {"vermilion": 0.6, "lead_white": 0.4}, 20),
        "mantle": (himation,),
        "mantle_fold": single("himation_fold", {"vermilion": 0.5, "bone_black": 0.2,
                                                "raw_umber": 0.3}, 35),
        "mantle_light": single("himation_light", {"orpiment": 0.5, "vermilion": 0.5}, 30),
        "chrysography": (*gilding()[:1], himation),
        "tunic": single("tunic", {"orpiment": 0.45, "lead_white": 0.55}, 35),
        "tunic_fold": single("tunic_fold", {"orpiment": 0.5, "yellow_ochre": 0.3,
                                            "raw_umber": 0.2}, 35),
        **flesh_roles(vermilion=0.08, ochre=0.28),
        "hair": single("hair", {"raw_umber": 0.5, "lead_white": 0.3, "bone_black": 0.2}, 30),
    }


# ---------------------------------------------------------------- scenes

SCENES: dict[str, SceneConfig] = {c.name: c for c in (
    SceneConfig("m1_virgin", "M1", 1000, 1000, (65, 41), (1, 1), 1.0, 101, (16, 12)),
    SceneConfig("m1_child", "M1", 2000, 2000, (46, 31), (1, 1), 1.0, 102, (16, 12)),
    SceneConfig("m6_corpus", "M6", 580, 600, (245, 245), (2, 2), 0.010, 601, (12, 12)),
    SceneConfig("m6_ioannis", "M6", 580, 1000, (367, 274), (1, 1), 0.010, 602, (24, 18)),
    SceneConfig("m6_ioannis_100ms", "M6", 580, 1000, (367, 274), (1, 1), 0.100, 602, (24, 18)),
)}


def panel_specs(config: SceneConfig) -> list[IconSpec]:
    """The painting(s) of a scene, in row-major panel order."""
    if config.name == "m1_virgin":
        return [IconSpec("virgin_face", _virgin_palette(), figure="virgin",
                         crop=(0.375, 0.36, 0.4), seed=config.seed)]
    if config.name == "m1_child":
        over = paint("retouch", {"raw_umber": 0.4, "yellow_ochre": 0.3, "lead_white": 0.3},
                     thickness_um=30, binder="linseed_oil")
        return [IconSpec(
            "child", _child_palette(), figure="child", inscriptions=("ΙϹ", "ΧϹ"),
            crop=(0.375, 0.5, 0.75), chrysography=True, seed=config.seed, face_scale=0.9,
            novel_pigments=frozenset({"smalt"}),
            alterations=(
                Alteration("fade", (0.27, 0.68), (0.09, 0.1)),
                Alteration("overpaint", (0.5, 0.72), (0.06, 0.07), over),
                Alteration("darken", (0.55, 0.25), (0.1, 0.09)),
            ))]
    if config.name == "m6_corpus":
        rng = np.random.default_rng(config.seed)
        figures = ("virgin", "saint", "child", "saint")
        texts = (("ΜΡ", "ΘΥ"), ("Ο ΑΓ", "ΝΙΚ"), ("ΙϹ", "ΧϹ"), ("Ο ΑΓ", "ΓΕΩΡ"))
        return [IconSpec(f"corpus_{i}", _corpus_palette(i, rng), figure=figures[i],
                         inscriptions=texts[i], chrysography=i in (1, 3),
                         seed=config.seed + i, face_scale=float(rng.uniform(0.85, 1.15)),
                         fold_frequency=float(rng.uniform(20, 40)),
                         # square panels: a 0.75 x 0.75 window of the figure, upper or middle
                         crop=(0.375, 0.42, 0.75) if i % 2 == 0 else (0.375, 0.5, 0.75))
                for i in range(config.n_panels)]
    if config.name.startswith("m6_ioannis"):
        return [IconSpec("ioannis", _ioannis_palette(), figure="saint",
                         inscriptions=("Ο ΑΓ", "ΙΩΑΝ"), chrysography=True, seed=config.seed,
                         face_scale=0.95, fold_frequency=33.0)]
    raise KeyError(config.name)


def _instrument(config: SceneConfig):
    from training import sim

    base = sim.M1_MISTRAL if config.instrument == "M1" else sim.M6_JETSTREAM
    return base.with_(spot_um=config.spot_um)


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array{value.shape}"
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _instrument_dict(instrument) -> dict:
    if hasattr(instrument, "to_dict"):
        return _jsonable(instrument.to_dict())
    return _jsonable(instrument)


def output_path(out_dir: str | Path, name: str, tiny: bool = False) -> Path:
    return Path(out_dir) / f"{name}{'_tiny' if tiny else ''}.h5"


def make_scene(name: str, out_dir: str | Path, *, tiny: bool = False,
               dwell_s: float | None = None, progress: bool = True, png: bool = True) -> Path:
    """Simulate scene `name` into `<out_dir>/<name>[_tiny].h5` (and a PNG next to it).

    `dwell_s` overrides the scene's dwell (real time per pixel); the file name stays the same
    and the dwell is recorded in the file's scan metadata.
    """
    if name not in SCENES:
        raise KeyError(f"unknown scene {name!r}; known: {', '.join(SCENES)}")
    config = SCENES[name]
    if dwell_s is not None:
        config = replace(config, dwell_s=float(dwell_s))
    if tiny:
        config = replace(config, panel_shape=config.tiny_panel_shape)
    instrument = _instrument(config)
    ph, pw = config.panel_shape
    rows, cols = config.layout
    height, width = ph * rows, pw * cols
    specs = panel_specs(config)

    # 1. paint, and per-pixel stack weights / colours per panel
    spot_px = config.spot_um / config.pixel_um
    renders: list[Rendering] = [render(s, ph, pw, SUPERSAMPLE) for s in specs]
    truths = [pixel_truth(r, spot_px) for r in renders]

    # 2. one simulator call per distinct stack (shared across panels)
    stacks: list[Stack] = []
    index: dict[tuple, int] = {}
    remap = []
    for r in renders:
        local = []
        for s in r.stacks:
            key = (s.layers, s.aged)
            if key not in index:
                index[key] = len(stacks)
                stacks.append(s)
            local.append(index[key])
        remap.append(np.array(local, dtype=np.intp))
    rates, elem = _stack_responses(instrument, stacks, progress, config.name)

    # 3. assemble the panels into one scan
    n_stacks = len(stacks)
    weights = np.zeros((height, width, n_stacks), dtype=np.float32)
    photo = np.zeros((height, width, 3), dtype=np.uint8)
    original = np.zeros_like(photo)
    labels = np.zeros((height, width), dtype=np.int16)
    masks = {k: np.zeros((height, width), dtype=bool) for k in MASK_NAMES}
    panels = []
    for p, (truth, spec) in enumerate(zip(truths, specs, strict=True)):
        y0, x0 = (p // cols) * ph, (p % cols) * pw
        sl = np.s_[y0:y0 + ph, x0:x0 + pw]
        w_local = truth.weights.reshape(ph, pw, -1)
        weights[(*sl, remap[p])] = w_local  # stacks are unique within a panel
        photo[sl], original[sl] = truth.photo_rgb, truth.original_rgb
        labels[sl] = remap[p][truth.labels]
        for k in MASK_NAMES:
            masks[k][sl] = truth.masks[k]
        panels.append({"name": spec.name, "y0": y0, "x0": x0, "height": ph, "width": pw})
    weights = weights.reshape(-1, n_stacks)
    element_maps = {e: (weights @ elem[:, i]).reshape(height, width).astype(np.float32)
                    for i, e in enumerate(ELEMENTS)}

    # 4. counting statistics, chunk by chunk
    counts, live, real, total = _acquire_all(instrument, weights, rates, config, progress)
    scan = {
        "scene": config.name, "tiny": tiny, "width": width, "height": height,
        "dwell_s": config.dwell_s, "beam_spot_um": config.spot_um,
        "pixel_size_um": config.pixel_um, "scan_pattern": "raster", "seed": config.seed,
        "panels": panels, "supersample": SUPERSAMPLE, "simulated": True,
        "pigment_labels": "ground_truth/pigments indexes the layer stack names "
                          "(pigments attr 'names'), majority over the pixel area",
        "masks": {"group": MASKS_GROUP, "names": list(MASK_NAMES),
                  "definition": "more than half of the pixel area is in such a region; "
                                "'novel' = a pigment absent from the training scene"},
        "original_rgb": "colour as painted: lake unfaded, varnish fresh, over-paint removed",
    }
    path = output_path(out_dir, config.name, tiny)
    write_dataset(
        path, counts.reshape(height, width, -1), instrument.grid,
        live.reshape(height, width), real.reshape(height, width),
        photo_rgb=photo, original_rgb=original, element_maps=element_maps,
        pigments=labels, pigment_names=[s.name for s in stacks],
        pigment_definition=(
            "index into names of the layer stack covering most of the pixel area; the "
            "stacks' layers and pigments are the JSON in ground_truth/stacks"),
        masks=masks, mask_definition=scan["masks"]["definition"],
        stacks=[{"name": s.name, "aged": sorted(s.aged),
                 "layers": [{"name": la.name, "thickness_um": la.thickness_um,
                             "density": round(la.density, 4), "pigments": list(la.pigments),
                             "overpaint": la.overpaint} for la in s.layers]} for s in stacks],
        instrument=_instrument_dict(instrument), scan=scan,
    )
    if png:
        save_png(path.with_suffix(".png"), config.name, photo, original, element_maps, masks,
                 instrument.grid, total)
    return path


def _stack_responses(instrument, stacks: list[Stack], progress: bool, name: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    from training import sim

    rates, elem = [], []
    for s in tqdm(stacks, desc=f"{name}: stacks", unit="stack", disable=not progress,
                  leave=False):
        resp = sim.stack_response(instrument, s.sim_layers())
        rates.append(np.asarray(resp.rates, dtype=np.float64))
        elem.append([float(resp.element_rates.get(e, 0.0)) for e in ELEMENTS])
    return np.stack(rates), np.asarray(elem, dtype=np.float64)


def _acquire_all(instrument, weights: np.ndarray, rates: np.ndarray, config: SceneConfig,
                 progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from training import sim

    n, c = weights.shape[0], rates.shape[1]
    # uint16 unless some channel could come near 65535 counts
    dtype = np.uint16 if rates.max() * config.dwell_s < 2e4 else np.uint32
    counts = np.empty((n, c), dtype=dtype)
    live = np.empty(n, dtype=np.float32)
    real = np.empty(n, dtype=np.float32)
    total = np.zeros(c, dtype=np.float64)
    starts = range(0, n, CHUNK)
    for k, i in enumerate(tqdm(starts, desc=f"{config.name}: counting", unit="chunk",
                               disable=not progress, leave=False)):
        # seeded by scene, dwell and chunk: dwell variants of a panel get independent noise
        rng = np.random.default_rng([config.seed, round(config.dwell_s * 1e6), k])
        expected = weights[i:i + CHUNK].astype(np.float64) @ rates
        acq = sim.acquire(expected, config.dwell_s, rng, instrument)
        counts[i:i + CHUNK] = acq.counts
        live[i:i + CHUNK] = acq.live_time_s
        real[i:i + CHUNK] = acq.real_time_s
        total += np.asarray(acq.counts, dtype=np.float64).sum(axis=0)
    return counts, live, real, total


# ---------------------------------------------------------------- figure

def _line_energies() -> dict[str, float]:
    import xraylib

    out = {}
    for e in ELEMENTS:
        z = xraylib.SymbolToAtomicNumber(e)
        line = xraylib.KA1_LINE if z <= 33 else xraylib.LA1_LINE
        out[e] = xraylib.LineEnergy(z, line)
    return out


def save_png(path: Path, title: str, photo: np.ndarray, original: np.ndarray,
             maps: dict[str, np.ndarray], masks: dict[str, np.ndarray], grid,
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


# ---------------------------------------------------------------- command line

ALL = ("m1_virgin", "m1_child", "m6_corpus", "m6_ioannis", "m6_ioannis_100ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.scenes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--only", action="append", choices=list(SCENES),
                        help="make only this scene (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test versions")
    parser.add_argument("--dwell-s", type=float, default=None, help="override the dwell")
    parser.add_argument("--no-png", action="store_true")
    args = parser.parse_args(argv)
    names = args.only or list(ALL)
    for name in tqdm(names, desc="scenes", unit="scene"):
        t0 = time.perf_counter()
        path = make_scene(name, args.out, tiny=args.tiny, dwell_s=args.dwell_s,
                          png=not args.no_png)
        tqdm.write(f"{path} ({path.stat().st_size / 2**20:.1f} MiB, "
                   f"{time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
