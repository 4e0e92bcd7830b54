"""Fundamental-parameters MA-XRF simulator (every atomic constant from xraylib).

    from training.sim import M6_JETSTREAM, Layer, stack_response, acquire
    resp = stack_response(M6_JETSTREAM, [Layer("Pb3(CO3)2(OH)2", 6.1, 20e-4),
                                         Layer("CaCO3", 2.0, 0.05)])
    acq = acquire(resp.rates[None], 0.01, np.random.default_rng(0), M6_JETSTREAM)

Modules, one job each:
- instruments: `Instrument` presets (M6 Jetstream, M1 Mistral), `.with_()` for conditions.
- materials: `Layer` (formula or mass fractions, density, thickness), mixtures.
- xsec: cached xraylib tables (lines, attenuation, fluorescence and scatter cross-sections).
- tube: Ebel continuum + anode lines, tube window, glass filter, polycapillary, gas.
- detector: SDD efficiency, Fano-limited Gaussian, Si escape peaks, flat shelf.
- response: `stack_response` -> expected counts per live second (primary fluorescence with
  self-absorption through the layers above, Rayleigh + Compton scatter).
- acquire: dead time, pile-up, Poisson counting for a batch of pixels.
- compare_real: the realism check against the real M6 spectrum, and its figure.

Neglected (stated): secondary fluorescence, multiple scattering, Compton profile asymmetry,
the angular spread of a convergent polycapillary beam beyond an effective Compton width.
"""

from training.sim.acquire import Acquisition, acquire
from training.sim.instruments import M1_MISTRAL, M6_JETSTREAM, Instrument
from training.sim.materials import Layer, composition_of, mix_compositions, parse_formula
from training.sim.response import StackResponse, stack_response

__all__ = [
    "M1_MISTRAL",
    "M6_JETSTREAM",
    "Acquisition",
    "Instrument",
    "Layer",
    "StackResponse",
    "acquire",
    "composition_of",
    "mix_compositions",
    "parse_formula",
    "stack_response",
]
