"""Named, deterministic simulated scans: the study's two experiments as dataset files.

    python -m training.scenes --out data [--only NAME] [--tiny] [--dwell-s S]

The scenes, their instruments and roles are the catalogue (`training.catalogue`); their
paintings are `training.palettes`. `m1_child` holds a faded red lake, darkened varnish, an
over-painted patch and a pigment absent from `m1_virgin` (smalt: Co, As, K); its masks are in
`ground_truth/masks/<name>` (see `MASKS_GROUP`). `m6_ioannis` mixes orpiment with lead white
(As K / Pb L), gold over vermilion (Au L / Hg L) and orpiment with vermilion (As / Hg). Every
scene has a tiny version (`tiny=True`, at most 24 x 24 pixels) for tests, written as
`<name>_tiny.h5`.

Each scene is a few dozen distinct layer stacks: the simulator runs once per stack, pixel
expectations are spot weights (N, S) @ stack rates (S, C), and Poisson counting runs in chunks
of 4096 pixels with an rng seeded by (scene seed, chunk index), so output does not depend on
anything but the scene name, size and dwell.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from proto.dataset import write_dataset
from proto.elements import ELEMENTS
from proto.instrument import InstrumentDescription
from proto.instrument import load as load_description
from training import sim
from training.catalogue import ALL, SCENES, SceneConfig, output_path
from training.jsonutil import jsonable
from training.paintings import MASK_NAMES, Rendering, Stack, pixel_truth, render
from training.palettes import panel_specs
from training.scene_figure import save_png
from training.sim.instruments import INSTRUMENTS_DIR

MASKS_GROUP = "ground_truth/masks"  # (H, W) bool datasets named as MASK_NAMES
CHUNK = 4096
SUPERSAMPLE = 3


PRESETS = {"M1": "m1_mistral", "M6": "m6_jetstream"}  # catalogue name -> instruments/*.toml


def description(config: SceneConfig) -> InstrumentDescription:
    """The lab description of the scene's instrument (its TOML, at the scene's spot size)."""
    desc = load_description(INSTRUMENTS_DIR / f"{PRESETS[config.instrument]}.toml")
    return replace(desc, excitation=replace(desc.excitation, spot_um=float(config.spot_um)))


def _instrument(desc: InstrumentDescription) -> sim.Instrument:
    return sim.Instrument.from_description(desc)


def instrument_record(desc: InstrumentDescription, instrument: sim.Instrument) -> dict:
    """A simulated scene's `instrument` attribute: the simulator's own record (read back by
    `sim.Instrument.from_dict`) plus the description and its fingerprint, as a converted
    file stores them (proto/INSTRUMENT.md), so a replay sends what a real scanner would."""
    return {**jsonable(instrument.to_dict()), "description": desc.to_dict(),
            "fingerprint": desc.fingerprint()}


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
    desc = description(config)
    instrument = _instrument(desc)
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
        instrument=instrument_record(desc, instrument), scan=scan,
    )
    if png:
        save_png(path.with_suffix(".png"), config.name, photo, original, element_maps, masks,
                 instrument.grid, total)
    return path


def _stack_responses(instrument: sim.Instrument, stacks: list[Stack], progress: bool, name: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    rates, elem = [], []
    for s in tqdm(stacks, desc=f"{name}: stacks", unit="stack", disable=not progress,
                  leave=False):
        resp = sim.stack_response(instrument, s.sim_layers())
        rates.append(np.asarray(resp.rates, dtype=np.float64))
        elem.append([float(resp.element_rates.get(e, 0.0)) for e in ELEMENTS])
    return np.stack(rates), np.asarray(elem, dtype=np.float64)


def _acquire_all(instrument: sim.Instrument, weights: np.ndarray, rates: np.ndarray,
                 config: SceneConfig, progress: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.scenes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data"),
                        help="folder for the dataset files and PNGs (default: data)")
    parser.add_argument("--only", action="append", choices=list(SCENES),
                        help="make only this scene (repeatable)")
    parser.add_argument("--tiny", action="store_true",
                        help="the tiny test versions (<name>_tiny.h5, at most 24 x 24 pixels)")
    parser.add_argument("--dwell-s", type=float, default=None,
                        help="override the scene's dwell in s (the file name stays the same)")
    parser.add_argument("--no-png", action="store_true", help="skip the PNG of each scene")
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
