"""Procedural icon-like paintings: a small set of layer stacks laid out on a panel.

An icon is drawn in *figure coordinates* (panel height 1, width 0.75, y down): background,
halo, garments with folds, a face with shaded flesh, features and inscriptions. Each region is
painted with a role's layers from a palette (`IconSpec.palette`), over a gesso ground and under
a varnish, so every point of the panel is one `Stack` out of a few dozen. Alterations then
change regions: "fade" (organic lake loses its colour), "darken" (varnish browns), "overpaint"
(a later layer on top). A scene renders a crop window of the figure at a pixel grid.

Ground truth conventions:
- photograph RGB: the colour of the stack as it looks today (faded lake, darkened varnish,
  over-paint on top);
- original RGB: the colour before any alteration, i.e. as painted: lake unfaded, varnish fresh,
  over-paint layers removed (the hidden paint's colour where over-painted);
- both are pixel-area averages (like a photograph registered to the scan grid); spectra and
  element maps are mixtures of the stacks under the beam spot (Gaussian, FWHM = spot) averaged
  over the pixel (the M6 scans on the fly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextPath
from scipy.ndimage import gaussian_filter

from training.pigments import (
    PaintLayer,
    as_overpaint,
    bole,
    gold_leaf,
    ground,
    linear_to_srgb,
    paint,
    srgb_to_linear,
    varnish,
)

FIGURE_WIDTH = 0.75  # figure coordinates: panel height 1, width 0.75
MASK_NAMES = ("faded", "darkened_varnish", "overpaint", "novel")


@dataclass(frozen=True)
class Stack:
    """Layers surface first (varnish ... ground) and the alterations that apply to its look."""

    name: str
    layers: tuple[PaintLayer, ...]
    aged: frozenset[str] = frozenset()  # subset of {"fade", "darken"}

    def colour_linear(self, *, original: bool) -> np.ndarray:
        """Linear RGB reflectance: opaque layers hide, semi-transparent ones filter."""
        c = np.ones(3)
        for layer in reversed(self.layers):
            if original and layer.overpaint:
                continue
            aged = (not original) and layer.ages is not None and layer.ages in self.aged
            lin = srgb_to_linear(layer.aged_srgb if aged else layer.srgb)
            c = layer.opacity * lin + (1 - layer.opacity) * c * lin
        return c

    @property
    def pigments(self) -> frozenset[str]:
        return frozenset(p for layer in self.layers for p in layer.pigments)

    @property
    def faded(self) -> bool:
        return "fade" in self.aged and any(la.ages == "fade" for la in self.layers)

    @property
    def darkened(self) -> bool:
        return "darken" in self.aged and any(la.ages == "darken" for la in self.layers)

    @property
    def overpainted(self) -> bool:
        return any(la.overpaint for la in self.layers)

    def sim_layers(self) -> list:
        return [la.to_sim() for la in self.layers]


class StackSet:
    """Interns stacks so equal stacks share one index (and one simulator call)."""

    def __init__(self) -> None:
        self.stacks: list[Stack] = []
        self._index: dict[tuple, int] = {}

    def add(self, stack: Stack) -> int:
        key = (stack.layers, stack.aged)
        if key not in self._index:
            self._index[key] = len(self.stacks)
            self.stacks.append(stack)
        return self._index[key]


Palette = dict[str, tuple[PaintLayer, ...]]  # role -> paint layers, surface first


@dataclass(frozen=True)
class Alteration:
    kind: str  # "fade" | "darken" | "overpaint"
    centre: tuple[float, float]  # figure coordinates (x, y)
    radii: tuple[float, float]
    layer: PaintLayer | None = None  # the over-paint


@dataclass(frozen=True)
class IconSpec:
    name: str
    palette: Palette
    figure: str = "virgin"  # "virgin" (maphorion over the head) | "child" | "saint" (hair)
    inscriptions: tuple[str, str] = ("ΜΡ", "ΘΥ")
    crop: tuple[float, float, float] = (0.375, 0.5, 1.0)  # centre x, centre y, height
    alterations: tuple[Alteration, ...] = ()
    novel_pigments: frozenset[str] = frozenset()
    chrysography: bool = False  # gold lines on the mantle (Au over the mantle's paint)
    border: bool = True
    seed: int = 0
    face_scale: float = 1.0
    fold_frequency: float = 28.0


@dataclass
class Rendering:
    stack_map: np.ndarray  # (H*ss, W*ss) int32 index into stacks
    stacks: list[Stack]
    ss: int
    masks_sub: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------- geometry helpers

def _ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _text_mask(text: str, x: np.ndarray, y: np.ndarray, box: tuple[float, float, float, float]
               ) -> np.ndarray:
    """Even-odd fill of the glyph outlines of `text` fitted into box (x0, y0, x1, y1)."""
    path = TextPath((0, 0), text, size=1.0, prop=FontProperties(family="DejaVu Sans",
                                                               weight="bold"))
    ext = path.get_extents()
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / ext.width, (y1 - y0) / ext.height)
    # glyph y points up; figure y points down
    px = (x - x0) / scale + ext.x0
    py = ext.y1 - (y - y0) / scale
    pts = np.column_stack([px.ravel(), py.ravel()])
    inside = np.zeros(pts.shape[0], dtype=bool)
    for poly in path.to_polygons():
        inside ^= MplPath(poly).contains_points(pts)
    return inside.reshape(x.shape)


def _smooth_noise(x, y, rng: np.random.Generator, scale: float = 0.05, terms: int = 6
                  ) -> np.ndarray:
    """Resolution-independent smooth noise in about [-1, 1] (sum of random plane waves)."""
    out = np.zeros_like(x)
    for _ in range(terms):
        theta, phase = rng.uniform(0, 2 * np.pi, 2)
        k = rng.uniform(0.5, 1.5) / scale
        out += np.cos(k * (np.cos(theta) * x + np.sin(theta) * y) + phase)
    return out / np.sqrt(terms / 2)


# ---------------------------------------------------------------- rendering

def render(spec: IconSpec, height: int, width: int, ss: int = 2) -> Rendering:
    """Paint `spec` into a (height*ss, width*ss) map of stack indices over its crop window."""
    rng = np.random.default_rng(spec.seed)
    cx, cy, ch = spec.crop
    cw = ch * width / height
    hs, ws = height * ss, width * ss
    y = cy - ch / 2 + (np.arange(hs) + 0.5) / hs * ch
    x = cx - cw / 2 + (np.arange(ws) + 0.5) / ws * cw
    x, y = np.meshgrid(x, y)
    role = np.full(x.shape, "background", dtype=object)

    def put(mask: np.ndarray, name: str) -> None:
        if name in spec.palette:
            role[mask] = name

    fs = spec.face_scale
    hx, hy = FIGURE_WIDTH / 2 + rng.uniform(-0.01, 0.01), 0.33 + rng.uniform(-0.01, 0.01)
    noise = _smooth_noise(x, y, rng)
    # halo, with a thin ring
    r_halo = 0.2 * fs
    halo_r = np.hypot(x - hx, y - hy + 0.02)
    put(halo_r <= r_halo, "halo")
    put((halo_r <= r_halo) & (halo_r >= r_halo - 0.008), "halo_ring")
    # garment: shoulders widening to the bottom, head cover for the Virgin
    shoulders = (y > hy + 0.15 * fs) & (np.abs(x - hx) < 0.17 * fs + 0.55 * (y - hy - 0.15 * fs))
    tunic = shoulders & (np.abs(x - hx) < 0.045 * fs + 0.2 * (y - hy - 0.15 * fs)) & (
        y < hy + 0.5)
    folds = np.sin(spec.fold_frequency * (x - hx) + 8 * y + 2.0 * noise)
    put(shoulders, "mantle")
    if spec.figure == "virgin":
        put(_ellipse(x, y, hx, hy - 0.005, 0.165 * fs, 0.2 * fs), "mantle")
    put(shoulders & (folds > 0.75), "mantle_fold")
    put(shoulders & (folds < -0.85), "mantle_light")
    put(tunic, "tunic")
    put(tunic & (folds > 0.6), "tunic_fold")
    if spec.chrysography:
        hatch = np.abs(np.sin(70 * (x - hx) - 40 * y)) > 0.97
        put(shoulders & ~tunic & hatch & (y > hy + 0.25), "chrysography")
    if spec.figure == "virgin":
        put(_ellipse(x, y, hx, hy - 0.02, 0.115 * fs, 0.14 * fs), "cap")
    else:
        put(_ellipse(x, y, hx, hy - 0.035, 0.12 * fs, 0.13 * fs), "hair")
    # neck and face with shading from the upper left
    put((np.abs(x - hx) < 0.04 * fs) & (y > hy + 0.08 * fs) & (y < hy + 0.19 * fs), "flesh_shadow")
    rx, ry = 0.1 * fs, 0.13 * fs
    face = _ellipse(x, y, hx, hy, rx, ry)
    r2 = ((x - hx) / rx) ** 2 + ((y - hy) / ry) ** 2
    shade = 1 - r2 - 0.45 * (x - hx) / rx - 0.2 * (y - hy) / ry + 0.15 * noise
    put(face, "flesh")
    put(face & (shade < 0.15), "flesh_shadow")
    put(face & (shade > 0.75), "flesh_light")
    for sx in (-1, 1):
        put(_ellipse(x, y, hx + sx * 0.045 * fs, hy + 0.045 * fs, 0.022 * fs, 0.018 * fs),
            "cheek")
        ex, ey = hx + sx * 0.04 * fs, hy - 0.018 * fs
        put(_ellipse(x, y, ex, ey, 0.024 * fs, 0.009 * fs), "eye_white")
        put(_ellipse(x, y, ex, ey, 0.009 * fs, 0.009 * fs), "dark")
        brow = _ellipse(x, y, hx + sx * 0.042 * fs, hy - 0.04 * fs, 0.032 * fs, 0.012 * fs)
        put(brow & ~_ellipse(x, y, hx + sx * 0.042 * fs, hy - 0.036 * fs, 0.032 * fs, 0.01 * fs),
            "dark")
    put((np.abs(x - hx - 0.004 * fs) < 0.005 * fs) & (y > hy - 0.01) & (y < hy + 0.05 * fs),
        "flesh_shadow")
    put(_ellipse(x, y, hx, hy + 0.08 * fs, 0.03 * fs, 0.011 * fs), "lips")
    # inscriptions either side of the halo, border
    for text, tx in zip(spec.inscriptions, (0.05, FIGURE_WIDTH - 0.2), strict=True):
        put(_text_mask(text, x, y, (tx, 0.05, tx + 0.15, 0.12)), "inscription")
    if spec.border:
        put((x < 0.025) | (x > FIGURE_WIDTH - 0.025) | (y < 0.025) | (y > 0.975), "border")

    stackset = StackSet()
    cache: dict[str, int] = {}
    stack_map = np.empty(x.shape, dtype=np.int32)
    for name in np.unique(role):
        layers = (varnish(), *spec.palette[name], ground())
        cache[name] = stackset.add(Stack(name, layers))
        stack_map[role == name] = cache[name]
    for alt in spec.alterations:
        region = _ellipse(x, y, *alt.centre, *alt.radii)
        stack_map = _alter(stack_map, region, stackset, lambda s, a=alt: _apply(s, a))
    masks = {
        "faded": np.array([s.faded for s in stackset.stacks])[stack_map],
        "darkened_varnish": np.array([s.darkened for s in stackset.stacks])[stack_map],
        "overpaint": np.array([s.overpainted for s in stackset.stacks])[stack_map],
        "novel": np.array([bool(s.pigments & spec.novel_pigments)
                           for s in stackset.stacks])[stack_map],
    }
    return Rendering(stack_map, stackset.stacks, ss, masks)


def _apply(stack: Stack, alt: Alteration) -> Stack:
    if alt.kind in ("fade", "darken"):
        return replace(stack, name=f"{stack.name}+{alt.kind}", aged=stack.aged | {alt.kind})
    if alt.kind == "overpaint":
        assert alt.layer is not None
        layers = (stack.layers[0], as_overpaint(alt.layer), *stack.layers[1:])
        return replace(stack, name=f"{stack.name}+overpaint", layers=layers)
    raise ValueError(f"unknown alteration {alt.kind!r}")


def _alter(stack_map: np.ndarray, region: np.ndarray, stackset: StackSet,
           change: Callable[[Stack], Stack]) -> np.ndarray:
    out = stack_map.copy()
    for idx in np.unique(stack_map[region]):
        new = stackset.add(change(stackset.stacks[idx]))
        out[region & (stack_map == idx)] = new
    return out


# ---------------------------------------------------------------- per-pixel ground truth

@dataclass
class PixelTruth:
    weights: np.ndarray  # (H*W, S) float32, spot-and-pixel weights of each stack, rows sum to 1
    photo_rgb: np.ndarray  # (H, W, 3) uint8
    original_rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int16, stack at the pixel (area majority)
    masks: dict[str, np.ndarray]  # (H, W) bool, more than half the pixel area altered/novel


def _block_mean(a: np.ndarray, ss: int) -> np.ndarray:
    h, w = a.shape[0] // ss, a.shape[1] // ss
    return a.reshape(h, ss, w, ss, *a.shape[2:]).mean(axis=(1, 3))


def pixel_truth(rendering: Rendering, spot_px: float) -> PixelTruth:
    """Per-pixel stack weights under a Gaussian beam of FWHM `spot_px` pixels, and colours."""
    ss, smap, stacks = rendering.ss, rendering.stack_map, rendering.stacks
    h, w = smap.shape[0] // ss, smap.shape[1] // ss
    sigma = spot_px * ss / 2.3548
    weights = np.zeros((h, w, len(stacks)), dtype=np.float32)
    area = np.zeros((h, w, len(stacks)), dtype=np.float32)
    for s in np.unique(smap):
        onehot = (smap == s).astype(np.float32)
        area[..., s] = _block_mean(onehot, ss)
        blurred = gaussian_filter(onehot, sigma, mode="nearest", truncate=3.0)
        weights[..., s] = _block_mean(blurred, ss)
    weights /= weights.sum(axis=2, keepdims=True)
    colours = {}
    for key, original in (("photo", False), ("original", True)):
        table = np.array([s.colour_linear(original=original) for s in stacks])  # (S, 3)
        lin = area.reshape(-1, len(stacks)) @ table
        colours[key] = np.round(linear_to_srgb(lin) * 255).astype(np.uint8).reshape(h, w, 3)
    masks = {k: _block_mean(m.astype(np.float32), ss) > 0.5
             for k, m in rendering.masks_sub.items()}
    return PixelTruth(
        weights=weights.reshape(h * w, len(stacks)),
        photo_rgb=colours["photo"], original_rgb=colours["original"],
        labels=area.argmax(axis=2).astype(np.int16), masks=masks,
    )


# ---------------------------------------------------------------- palettes

def flesh_roles(vermilion: float = 0.1, ochre: float = 0.2, binder: str = "egg_tempera"
                ) -> Palette:
    """Flesh in the Byzantine manner: green-earth/ochre proplasmos under lead white flesh."""
    base = paint("proplasmos", {"green_earth": 0.5, "yellow_ochre": 0.4, "raw_umber": 0.1},
                 thickness_um=20, binder=binder)

    def flesh(name: str, white: float, verm: float, och: float) -> tuple[PaintLayer, ...]:
        return (paint(name, {"lead_white": white, "vermilion": verm, "yellow_ochre": och},
                      thickness_um=25, binder=binder), base)

    return {
        "flesh": flesh("flesh", 0.7, vermilion, ochre),
        "flesh_light": flesh("flesh_light", 0.88, vermilion * 0.5, ochre * 0.4),
        "flesh_shadow": (paint("flesh_shadow", {"yellow_ochre": 0.5, "raw_umber": 0.2,
                                                "lead_white": 0.3}, thickness_um=20), base),
        "cheek": flesh("cheek", 0.55, vermilion * 3, ochre * 0.5),
        "lips": (paint("lips_lake", {"red_lake": 1.0}, thickness_um=10, opacity=0.6),
                 paint("lips", {"vermilion": 0.8, "lead_white": 0.2}, thickness_um=20)),
        "eye_white": (paint("eye_white", {"lead_white": 1.0}, thickness_um=15), base),
        "dark": (paint("dark", {"bone_black": 0.6, "raw_umber": 0.4}, thickness_um=15), base),
        "hair": (paint("hair", {"raw_umber": 0.7, "bone_black": 0.3}, thickness_um=30),),
    }


def gilding() -> tuple[PaintLayer, ...]:
    return (gold_leaf(), bole())


def single(name: str, recipe: dict[str, float], thickness_um: float = 30.0, **kw
           ) -> tuple[PaintLayer, ...]:
    return (paint(name, recipe, thickness_um=thickness_um, **kw),)
