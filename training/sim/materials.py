"""Paint layers: composition (element mass fractions), density, thickness."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import xraylib


@lru_cache(maxsize=4096)
def parse_formula(formula: str) -> tuple[tuple[str, float], ...]:
    """Chemical formula -> ((symbol, mass fraction), ...) through xraylib.CompoundParser."""
    parsed = xraylib.CompoundParser(formula)
    return tuple(
        (xraylib.AtomicNumberToSymbol(z), float(w))
        for z, w in zip(parsed["Elements"], parsed["massFractions"], strict=True)
    )


def composition_of(spec: Mapping[str, float] | str | Layer) -> dict[str, float]:
    """Mass fractions (summing to 1) of a formula string, a mapping or a Layer."""
    if isinstance(spec, Layer):
        return dict(spec.composition)
    if isinstance(spec, str):
        return dict(parse_formula(spec))
    total = float(sum(spec.values()))
    if not total > 0:
        raise ValueError(f"composition has no mass: {spec!r}")
    for symbol in spec:
        xraylib.SymbolToAtomicNumber(symbol)  # raises ValueError on a bad symbol
    return {s: float(w) / total for s, w in spec.items() if w > 0}


def mix_compositions(
    parts: Iterable[tuple[Mapping[str, float] | str | Layer, float]],
) -> dict[str, float]:
    """Mass-fraction mixture of compositions: [(formula | mapping | Layer, fraction), ...]."""
    out: dict[str, float] = {}
    total = 0.0
    for spec, fraction in parts:
        if fraction < 0:
            raise ValueError("mixture fractions must be non-negative")
        total += fraction
        for symbol, w in composition_of(spec).items():
            out[symbol] = out.get(symbol, 0.0) + w * fraction
    if not total > 0:
        raise ValueError("mixture has no mass")
    return {s: w / total for s, w in out.items()}


@dataclass(frozen=True)
class Layer:
    """One homogeneous layer; `composition` is normalised to mass fractions."""

    composition: dict[str, float] | str
    density_g_cm3: float
    thickness_cm: float
    key: tuple = field(init=False, repr=False, compare=True)

    def __post_init__(self) -> None:
        comp = composition_of(self.composition)
        if not (self.density_g_cm3 > 0 and self.thickness_cm >= 0):
            raise ValueError(f"layer needs positive density and thickness, got {self}")
        object.__setattr__(self, "composition", comp)
        object.__setattr__(
            self,
            "key",
            (tuple(sorted((s, round(w, 12)) for s, w in comp.items())),
             float(self.density_g_cm3), float(self.thickness_cm)),
        )

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def mass_thickness(self) -> float:
        """g/cm^2."""
        return self.density_g_cm3 * self.thickness_cm

    @classmethod
    def mix(
        cls,
        parts: Iterable[tuple[Mapping[str, float] | str | Layer, float]],
        density_g_cm3: float,
        thickness_cm: float,
    ) -> Layer:
        return cls(mix_compositions(parts), density_g_cm3, thickness_cm)
