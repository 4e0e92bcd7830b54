"""The palette of post-Byzantine icons (SCIENCE.md): chemistry, density and visible colour.

A `Pigment` is a material with an elemental composition (from a chemical formula, or a
mixture of formulas for earths, glasses and lakes) and a masstone colour. `paint()` mixes
pigments with a binder into a `PaintLayer`: elemental mass fractions and density for the
simulator, and a colour from single-constant Kubelka-Munk mixing, so lead white lightens,
vermilion + white gives flesh pinks and a lake is a transparent glaze.

Colours are sRGB in 0..1. Mass fractions come from xraylib's compound parser, so every
formula is checked against its atomic weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
import xraylib

RGB = tuple[float, float, float]


def _rgb(r: int, g: int, b: int) -> RGB:
    return (r / 255.0, g / 255.0, b / 255.0)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


@cache
def formula_mass_fractions(formula: str) -> dict[str, float]:
    """Element symbol -> mass fraction of a chemical formula (xraylib)."""
    parsed = xraylib.CompoundParser(formula)
    return {
        xraylib.AtomicNumberToSymbol(z): float(w)
        for z, w in zip(parsed["Elements"], parsed["massFractions"], strict=True)
    }


def mix_mass_fractions(parts: dict[str, float]) -> dict[str, float]:
    """Formula -> mass fraction of the material; returns normalised element mass fractions."""
    total = sum(parts.values())
    out: dict[str, float] = {}
    for formula, w in parts.items():
        for el, f in formula_mass_fractions(formula).items():
            out[el] = out.get(el, 0.0) + f * w / total
    return out


@dataclass(frozen=True)
class Pigment:
    name: str
    parts: dict[str, float]  # chemical formula -> mass fraction of the pigment (normalised)
    density: float  # g/cm3
    srgb: RGB  # masstone colour
    scatter: float = 1.0  # relative Kubelka-Munk scattering: high = opaque, low = glaze
    faded_srgb: RGB | None = None  # colour after light fading (organic lakes)
    elements: str = ""  # the XRF signature, for documentation and checks

    @property
    def mass_fractions(self) -> dict[str, float]:
        return mix_mass_fractions(self.parts)


# Binders and varnish carry no element of our maps; they matter for density, for absorption
# of low-energy lines and for the scatter (Compton/Rayleigh) that light matrices give.
BINDERS: dict[str, tuple[dict[str, float], float]] = {
    # egg yolk tempera: water gone, proteins + lipids (+ S, P traces of the yolk)
    "egg_tempera": ({"C18H32O2": 0.6, "C5H9NO2": 0.38, "S": 0.01, "P": 0.01}, 1.10),
    "linseed_oil": ({"C57H98O6": 1.0}, 0.93),
    "animal_glue": ({"C102H151N31O39": 1.0}, 1.30),  # collagen, average residue formula
}

P = Pigment
PALETTE: dict[str, Pigment] = {p.name: p for p in (
    P("lead_white", {"Pb3C2O8H2": 1.0}, 6.7, _rgb(242, 240, 230), scatter=4.0, elements="Pb"),
    P("red_lead", {"Pb3O4": 1.0}, 8.9, _rgb(222, 82, 38), elements="Pb"),
    P("vermilion", {"HgS": 1.0}, 8.1, _rgb(200, 38, 32), elements="Hg S"),
    P("yellow_ochre", {"FeO2H": 0.35, "Al2Si2O9H4": 0.45, "SiO2": 0.2}, 3.0,
      _rgb(196, 146, 58), elements="Fe"),
    P("red_ochre", {"Fe2O3": 0.45, "Al2Si2O9H4": 0.4, "SiO2": 0.15}, 3.5,
      _rgb(158, 68, 44), elements="Fe"),
    P("raw_umber", {"Fe2O3": 0.45, "MnO2": 0.15, "Al2Si2O9H4": 0.25, "SiO2": 0.15}, 3.4,
      _rgb(104, 80, 52), elements="Fe Mn"),
    P("green_earth", {"K2Fe2Mg2Si8O21H2": 0.8, "SiO2": 0.2}, 2.8, _rgb(120, 130, 92),
      scatter=0.6, elements="Fe K"),
    P("orpiment", {"As2S3": 1.0}, 3.49, _rgb(232, 186, 40), elements="As S"),
    P("azurite", {"Cu3C2O8H2": 1.0}, 3.8, _rgb(38, 78, 158), elements="Cu"),
    P("malachite", {"Cu2CO5H2": 1.0}, 4.0, _rgb(44, 138, 88), elements="Cu"),
    P("verdigris", {"CuC4H8O5": 1.0}, 1.9, _rgb(48, 148, 128), scatter=0.5, elements="Cu"),
    # potassium cobalt glass; As comes with the cobalt ore
    P("smalt", {"SiO2": 0.66, "K2O": 0.16, "CoO": 0.09, "As2O3": 0.04, "FeO": 0.02,
                "CaO": 0.03}, 2.5, _rgb(72, 92, 172), scatter=0.7, elements="Co As K Si"),
    P("prussian_blue", {"Fe7C18N18": 1.0}, 1.8, _rgb(18, 38, 86), scatter=0.4,
      elements="Fe"),
    P("gold", {"Au": 0.98, "Ag": 0.02}, 19.3, _rgb(214, 176, 70), scatter=4.0,
      elements="Au"),
    P("red_bole", {"Al2Si2O9H4": 0.8, "Fe2O3": 0.15, "SiO2": 0.05}, 2.6, _rgb(150, 62, 42),
      elements="Fe"),
    P("gypsum", {"CaSO6H4": 1.0}, 2.32, _rgb(246, 244, 236), scatter=3.0, elements="Ca S"),
    P("chalk", {"CaCO3": 1.0}, 2.71, _rgb(240, 239, 232), scatter=2.0, elements="Ca"),
    P("bone_black", {"Ca5P3O13H": 0.85, "C": 0.15}, 2.6, _rgb(28, 26, 25), elements="Ca P"),
    # carmine/kermes lake on an alum (Al) substrate with some chalk; no XRF line of our
    # eight elements except the Ca of the chalk, and it fades to almost nothing in light
    P("red_lake", {"AlO3H3": 0.55, "KAlS2O8": 0.1, "CaCO3": 0.15, "C22H20O13": 0.2}, 1.9,
      _rgb(150, 18, 48), scatter=0.3, faded_srgb=_rgb(226, 208, 204), elements="Al K (Ca)"),
)}


@dataclass(frozen=True)
class PaintLayer:
    """One layer of a stack: what the simulator needs plus how it looks.

    `ages` says which alteration changes its look: "fade" (organic lake loses colour) or
    "darken" (varnish yellows/browns). `overpaint` marks a later restoration layer.
    """

    name: str
    elements: tuple[tuple[str, float], ...]  # element -> mass fraction, sorted (hashable)
    density: float  # g/cm3
    thickness_um: float
    srgb: RGB  # colour as painted (over a perfectly white ground if semi-transparent)
    opacity: float = 1.0  # 1 = hides what is below; < 1 = glaze/filter over it
    aged_srgb: RGB | None = None
    ages: str | None = None  # "fade" | "darken" | None
    overpaint: bool = False
    pigments: tuple[str, ...] = field(default=())

    @property
    def composition(self) -> dict[str, float]:
        return dict(self.elements)

    def to_sim(self):  # -> training.sim.Layer
        from training.sim import Layer

        return Layer(self.composition, self.density, self.thickness_um * 1e-4)


def _km_mix(recipe: dict[str, float], faded: bool = False) -> np.ndarray:
    """Single-constant Kubelka-Munk: mix K and S per linear RGB channel, return reflectance."""
    k = np.zeros(3)
    s = 0.0
    for name, frac in recipe.items():
        pig = PALETTE[name]
        colour = pig.faded_srgb if (faded and pig.faded_srgb is not None) else pig.srgb
        r = np.clip(srgb_to_linear(colour), 0.003, 0.997)
        ks = (1 - r) ** 2 / (2 * r)
        scatter = pig.scatter if not (faded and pig.faded_srgb is not None) else 0.05
        k += frac * ks * scatter
        s += frac * scatter
    ks = k / max(s, 1e-9)
    return 1 + ks - np.sqrt(ks**2 + 2 * ks)


def paint(
    name: str,
    recipe: dict[str, float],
    *,
    thickness_um: float = 30.0,
    pvc: float = 0.45,
    binder: str = "egg_tempera",
    opacity: float = 1.0,
    overpaint: bool = False,
) -> PaintLayer:
    """A paint layer from pigment volume fractions `recipe` (normalised) in `binder`.

    `pvc` is the pigment volume concentration. Lakes in the recipe make the layer fade.
    """
    total = sum(recipe.values())
    recipe = {k: v / total for k, v in recipe.items()}
    b_parts, b_density = BINDERS[binder]
    masses = {k: v * pvc * PALETTE[k].density for k, v in recipe.items()}
    b_mass = (1 - pvc) * b_density
    density = sum(masses.values()) + b_mass
    elements: dict[str, float] = {}
    for k, m in masses.items():
        for el, f in PALETTE[k].mass_fractions.items():
            elements[el] = elements.get(el, 0.0) + f * m / density
    for el, f in mix_mass_fractions(b_parts).items():
        elements[el] = elements.get(el, 0.0) + f * b_mass / density
    fades = any(PALETTE[k].faded_srgb is not None for k in recipe)
    colour = tuple(float(v) for v in linear_to_srgb(_km_mix(recipe)))
    aged = tuple(float(v) for v in linear_to_srgb(_km_mix(recipe, faded=True))) if fades else None
    return PaintLayer(
        name=name, elements=tuple(sorted(elements.items())), density=density,
        thickness_um=thickness_um, srgb=colour, opacity=opacity,  # type: ignore[arg-type]
        aged_srgb=aged, ages="fade" if fades else None,  # type: ignore[arg-type]
        overpaint=overpaint, pigments=tuple(sorted(recipe)),
    )


def varnish(thickness_um: float = 15.0) -> PaintLayer:
    """Natural resin (mastic/dammar) varnish: clear when fresh, yellow-brown when darkened."""
    return PaintLayer(
        name="varnish", elements=tuple(sorted(formula_mass_fractions("C30H48O3").items())),
        density=1.05, thickness_um=thickness_um, srgb=_rgb(252, 250, 240), opacity=0.0,
        aged_srgb=_rgb(176, 132, 62), ages="darken",
    )


def ground(thickness_um: float = 400.0) -> PaintLayer:
    """Gesso: gypsum in animal glue, the white ground of icons."""
    return paint("gesso", {"gypsum": 1.0}, thickness_um=thickness_um, pvc=0.6,
                 binder="animal_glue")


def gold_leaf(thickness_um: float = 0.3) -> PaintLayer:
    pure = PALETTE["gold"]
    return PaintLayer(
        name="gold_leaf", elements=tuple(sorted(pure.mass_fractions.items())),
        density=pure.density, thickness_um=thickness_um, srgb=pure.srgb, pigments=("gold",),
    )


def bole(thickness_um: float = 15.0) -> PaintLayer:
    return paint("red_bole", {"red_bole": 1.0}, thickness_um=thickness_um, pvc=0.7,
                 binder="animal_glue")


def as_overpaint(layer: PaintLayer) -> PaintLayer:
    return replace(layer, name=f"overpaint_{layer.name}", overpaint=True)
