"""Does a lab scan's own header agree with the instrument description it is calibrated with?

`make calibrate` builds a bundle for the description it is given, from the scans it is given.
Where a scan's file names its instrument (a dataset converted with --instrument: its
fingerprint) or states its excitation (an IXRF export's tube, a Bruker file's beam voltage,
an APS MAPS file's beam energy), a description that says otherwise is a user's mistake: the
bundle would carry one instrument's fingerprint and another's spectra, and the split would
size its margin from the wrong beam spot. Checked here, said in one line.

A named instrument is checked whole (its fingerprint); otherwise only the excitation the
header states. The beam spot is an operating setting, never a conflict: the file's own,
where it states one, sizes the margin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proto.identity import Identity, differences, parse_identity, stream_instrument
from proto.instrument import InstrumentDescription, InstrumentError, Monochromatic, Tube

VOLTAGE_TOLERANCE = 0.02  # kV as a share: headers round; a 40 kV scan is no 50 kV one
ENERGY_TOLERANCE = 0.005  # monochromatic beam energy as a share


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def _stated(header: Mapping[str, Any]) -> tuple[str | None, float | None, float | None]:
    """(anode, tube kV, monochromatic keV) as the file's header states them, None if not."""
    anode = header.get("anode")
    anode = str(anode).strip() if anode not in (None, "") else None
    kv = _number(header.get("voltage_kv", header.get("beam_energy_kv")))
    return anode, kv, _number(header.get("beam_energy_kev"))


def _describes(desc: InstrumentDescription) -> str:
    x = desc.excitation
    if isinstance(x, Tube):
        return f"a {x.anode} tube at {x.voltage_kv:g} kV"
    return f"a {x.energy_kev:g} keV monochromatic beam"


def _named(header: Mapping[str, Any]) -> Identity | None:
    """The instrument a dataset file names (a fingerprint, proto/INSTRUMENT.md), else None."""
    try:
        return parse_identity(stream_instrument(header))
    except (InstrumentError, ValueError, TypeError):
        return None


def header_conflict(header: Mapping[str, Any], desc: InstrumentDescription) -> str | None:
    """What the header states against the description, in words, or None where they agree
    (or the header states nothing checkable)."""
    if (ident := _named(header)) is not None:
        if ident.fingerprint == desc.fingerprint():
            return None
        what = (f" ({'; '.join(differences(ident.description, desc))})"
                if ident.description is not None else "")
        return (f"it was recorded by {ident.label}, not by the description's '{desc.name}' "
                f"(fingerprint {desc.fingerprint()[:12]}){what}: calibrate with the "
                "description of the instrument that recorded this scan")
    anode, kv, kev = _stated(header)
    x = desc.excitation
    said = []
    if isinstance(x, Tube):
        if kev is not None:
            said.append(f"a {kev:g} keV monochromatic beam")
        if anode is not None and anode.lower() != x.anode.lower():
            said.append(f"a {anode} anode")
        if kv is not None and abs(kv - x.voltage_kv) > VOLTAGE_TOLERANCE * x.voltage_kv:
            said.append(f"{kv:g} kV")
    elif isinstance(x, Monochromatic):
        if anode is not None or kv is not None:
            said.append("an X-ray tube" + (f" ({anode} anode)" if anode else ""))
        if kev is not None and abs(kev - x.energy_kev) > ENERGY_TOLERANCE * x.energy_kev:
            said.append(f"a {kev:g} keV beam")
    if not said:
        return None
    return (f"its header states {' and '.join(said)}, but the description '{desc.name}' has "
            f"{_describes(desc)}: calibrate with the description of the instrument that "
            "recorded this scan (training/instruments/ has examples)")


def spot_um(header: Mapping[str, Any], desc: InstrumentDescription) -> float:
    """The beam spot (FWHM, um) the scan was taken with: its header's, else the description's
    (0: unknown)."""
    return _number(header.get("spot_um")) or desc.excitation.spot_um or 0.0
