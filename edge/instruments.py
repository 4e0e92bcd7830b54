"""Is this stream from an instrument the loaded models were trained for? (SPEC.md 4.1)

A bundle lists the instruments it was trained for (manifest `instruments`, fingerprints of
proto/INSTRUMENT.md); a stream states its own in `scan_start.instrument`. A model is
*foreign* to a stream when the bundle lists instruments and the stream's fingerprint is not
among them, or the stream states none. A bundle that lists none is not checked. The daemon
refuses a stream any model is foreign to, with `refusal`'s sentence, unless it allows
foreign streams; then those models' previews are flagged.
"""

from __future__ import annotations

from proto.identity import Identity, differences, parse_identity
from proto.instrument import InstrumentError

ALLOW_HINT = ("start the daemon with --allow-foreign (config allow_foreign = true) to serve "
              "it anyway, flagged foreign")


def stream_identity(start) -> Identity | None:
    """The instrument a scan_start states; None when it states none (or cannot be read)."""
    try:
        return parse_identity(getattr(start, "instrument", None) or {})
    except InstrumentError:  # the wire refuses these; a resumed sidecar could hold one
        return None


def foreign_kinds(start, sessions: dict) -> dict[str, list[Identity]]:
    """kind -> the instruments its model was trained for, for each model foreign to `start`."""
    ident = stream_identity(start)
    out: dict[str, list[Identity]] = {}
    for kind, session in sessions.items():
        trained = session.manifest.identities
        if trained and (ident is None
                        or ident.fingerprint not in {t.fingerprint for t in trained}):
            out[kind] = trained
    return out


def refusal(start, sessions: dict) -> str | None:
    """Why the models will not serve this stream's instrument, and what to do, for the
    operator; None when every model was trained for it (or states no instrument)."""
    why = explanation(start, sessions)
    if why is None:
        return None
    if stream_identity(start) is None:
        return (f"{why}: send the instrument's identity with the scan (convert files with "
                f"--instrument), or {ALLOW_HINT}")
    return f"{why}: {ALLOW_HINT}"


def explanation(start, sessions: dict) -> str | None:
    """Which instrument the stream is from and what the foreign models were trained for."""
    foreign = foreign_kinds(start, sessions)
    if not foreign:
        return None
    ident = stream_identity(start)
    groups: dict[tuple[str, ...], list[str]] = {}
    for kind, trained in foreign.items():
        groups.setdefault(tuple(t.fingerprint for t in trained), []).append(kind)
    parts = []
    for kinds in groups.values():
        trained = foreign[kinds[0]]
        names = " or ".join(t.label for t in trained)
        which = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
        text = f"the {which} model{'s were' if len(kinds) > 1 else ' was'} trained for {names}"
        diff = _differences(ident, trained[0])
        parts.append(text + (f", which differs in {', '.join(diff)}" if diff else ""))
    head = (f"this stream is from {ident.label}" if ident is not None else
            "this stream does not say which instrument it comes from (scan_start.instrument "
            "has no fingerprint)")
    return f"{head}; {'; '.join(parts)}"


def _differences(ident: Identity | None, trained: Identity) -> list[str]:
    if ident is None or ident.description is None or trained.description is None:
        return []
    return differences(ident.description, trained.description, limit=3)


def trust_detail(scan) -> dict:
    """For people, in a status's detail.scan: the stream's instrument, why a model is foreign
    (served because the daemon allows it), the trust map's unfamiliar share, the share of
    pixels whose learned residual was served (gated bundles only), which background the
    element fit serves (per-pixel SNIP or the scan's continuum), and the energy axis the
    element maps read the stream on (bundles that check it)."""
    ident = stream_identity(scan.start)
    canvas = scan.canvas
    out: dict = {"instrument": ident.label if ident else "unknown instrument"}
    if canvas.foreign:
        sessions = {k: s for k, s in scan.engine.sessions.items() if k in canvas.foreign}
        out["foreign"] = explanation(scan.start, sessions)
    if canvas.threshold is not None:
        out["unfamiliar"] = {"threshold": canvas.threshold,
                             "fraction": canvas.unfamiliar / max(1, canvas.filled)}
    served = scan.engine.gated_share()  # bundles whose residual is gated (BUNDLE.md in_domain)
    if served:
        out["residual_served"] = {k: round(v, 4) for k, v in served.items()}
    if backgrounds := scan.engine.backgrounds():  # proto.continuum: SNIP or the scan's
        out["background"] = backgrounds
    if getattr(scan, "axis", None) is not None:  # proto.energy_axis: the axis served
        out["energy_axis"] = scan.axis.status()
    return out
