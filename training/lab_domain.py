"""What an RGB model trained on a lab's scans is for: the instruments and the training domain.

A bundle records the instruments it was trained for (proto/identity.py maps: name,
fingerprint, the description's tables) so the edge can refuse or flag a stream from another
one, and the domain of its training spectra (proto/BUNDLE.md `domain`: energy range with
signal, dwell range, count-rate range) so an operator can see how far a scan is from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from proto.dataset import open_dataset
from proto.identity import identity_map
from proto.instrument import InstrumentDescription, InstrumentError
from training.data import Scene
from training.preprocess import MODEL_GRID

SIGNAL_FRACTION = 1e-3  # a channel has signal where its mean rate is above this x the peak's
RATE_PERCENTILES = (0.5, 99.5)


def identity_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """A dataset's instrument record -> its identity map, when it holds a description."""
    desc = record.get("description")
    if not isinstance(desc, Mapping):
        return None
    try:
        return identity_map(InstrumentDescription.from_dict(dict(desc)))
    except InstrumentError:
        return None


def describe_instruments(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The distinct instrument identities of these dataset files (fingerprint order kept);
    a file whose record states no description adds nothing (the manifest then says
    nothing about its instrument, and the edge does not check it)."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        with open_dataset(path) as ds:
            ident = identity_of(ds.instrument)
        if ident is not None:
            out.setdefault(ident["fingerprint"], ident)
    return list(out.values())


def simulator_instrument(record: Mapping[str, Any]) -> tuple[Any, str]:
    """(training.sim.Instrument, "") for a dataset's instrument record, or (None, why not):
    a simulated scene's own record, else the simulator's model of its description."""
    from training import sim

    try:
        return sim.Instrument.from_dict(dict(record)), ""
    except (ValueError, KeyError, TypeError):
        pass
    desc = record.get("description")
    if not isinstance(desc, Mapping):
        return None, "the dataset states no instrument description (convert --instrument)"
    try:
        return sim.Instrument.from_description(InstrumentDescription.from_dict(dict(desc))), ""
    except (InstrumentError, ValueError) as e:
        return None, f"the simulator cannot model this instrument: {e}"


def training_domain(rates: np.ndarray, scenes: Iterable[Scene]) -> dict[str, Any]:
    """Energy range with signal, dwell range and total count-rate range of the training
    spectra (counts/s on MODEL_GRID), as proto/BUNDLE.md's `domain` names them."""
    rates = np.asarray(rates, np.float64)
    mean = rates.mean(axis=0)
    signal = np.flatnonzero(mean > SIGNAL_FRACTION * mean.max()) if mean.max() > 0 else []
    centres = MODEL_GRID.centres()
    half = MODEL_GRID.gain / 2
    total = rates.sum(axis=1)
    dwell = [s.dwell_s for s in scenes]
    out: dict[str, Any] = {
        "dwell_s": [float(min(dwell)), float(max(dwell))],
        "count_rate_cps": [float(v) for v in np.percentile(total, RATE_PERCENTILES)],
        "spectra": len(rates),
    }
    if len(signal):
        out["energy_kev"] = [round(float(centres[signal[0]] - half), 3),
                             round(float(centres[signal[-1]] + half), 3)]
    return out
