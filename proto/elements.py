"""The elements our element maps show, fixed here once for every layer.

The eight main elements of post-Byzantine panel paintings: ground (Ca), earths
and umbers (Mn, Fe), copper greens and blues (Cu), orpiment and smalt (As),
gilding (Au), vermilion (Hg) and lead white / red lead (Pb). Each map is the
net count rate of the element's main line group, the group a conservator
reads for that element on an M6 spectrum.
"""

ELEMENTS: tuple[str, ...] = ("Ca", "Mn", "Fe", "Cu", "As", "Au", "Hg", "Pb")

# Line group whose net counts define each element's map.
LINE_GROUP: dict[str, str] = {
    "Ca": "K", "Mn": "K", "Fe": "K", "Cu": "K", "As": "K",
    "Au": "L", "Hg": "L", "Pb": "L",
}

MAP_UNITS = "counts/s"
MAP_DEFINITION = (
    "expected net counts per live second in the element's main line group "
    "(K for Z <= 33, L above), all lines of the group summed, after absorption "
    "in the paint and detector efficiency; no continuum, scatter or escape"
)

SIGMA_SUFFIX = "_sigma"  # an element map's 1-sigma column beside it (proto/BUNDLE.md)


def map_outputs(outputs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A bundle's element maps, in order, without their `_sigma` columns."""
    return tuple(o for o in outputs if not o.endswith(SIGMA_SUFFIX))
