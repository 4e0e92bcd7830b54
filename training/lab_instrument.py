"""The instrument of a lab's scan, as the RGB training needs it.

The bundle's own `instruments` and training `domain` are stated by export (export.domain,
from the training file's instrument record and spectra); here: which instrument each
training scan names (for the provenance in `train_data`), and the simulator's model of it
for the pigment library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proto.identity import parse_identity, stream_instrument
from proto.instrument import InstrumentDescription, InstrumentError


def identity_of(record: Mapping[str, Any]) -> dict[str, str] | None:
    """{"name", "fingerprint"} a dataset's instrument record states, else None."""
    try:
        ident = parse_identity(stream_instrument(dict(record)))
    except (InstrumentError, ValueError, TypeError):
        return None
    return None if ident is None else {"name": ident.name, "fingerprint": ident.fingerprint}


def simulator_instrument(record: Mapping[str, Any]) -> tuple[Any, str, bool]:
    """(training.sim.Instrument, why not, exact) for a dataset's instrument record. `exact`:
    the record is the simulator's own (a simulated scene), so export can rebuild the very
    library training used (training.train.scan_library); else the simulator's model of the
    lab's description (proto/INSTRUMENT.md), or (None, the reason) when it has none."""
    from training import sim

    try:
        return sim.Instrument.from_dict(dict(record)), "", True
    except (ValueError, KeyError, TypeError):
        pass
    desc = record.get("description")
    if not isinstance(desc, Mapping):
        return None, "the dataset states no instrument description (convert --instrument)", False
    try:
        return (sim.Instrument.from_description(InstrumentDescription.from_dict(dict(desc))),
                "", False)
    except (InstrumentError, ValueError) as e:
        return None, f"the simulator cannot model this instrument: {e}", False
