"""One scan's lifecycle: accepted or refused at scan_start, then fed, then closed.

`check_start` decides whether the loaded models can serve a stream; `ScanState`
holds the canvas, the inference engine and the recorder of an accepted scan,
and `check_spectra` applies the per-message rules (the wire decoder has already
checked types and shapes of the message itself).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from edge import instruments
from edge.canvas import Canvas
from edge.inference import Engine, refusal
from edge.recorder import Recorder
from proto import wire
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid
from proto.energy_axis import AxisLock
from proto.messages import MAX_CHANNELS, MAX_HEIGHT, MAX_WIDTH


class Rejected(Exception):
    """A message the daemon will not take; `reason` is the status counter key."""

    def __init__(self, reason: str, detail: str = "", pixels: int = 0) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.pixels = reason, detail, pixels


def scan_fields(start) -> dict:
    """The scan_start message as a plain dict (for the recording and the sidecar)."""
    d = dataclasses.asdict(start) if dataclasses.is_dataclass(start) else dict(vars(start))
    return {k: v for k, v in d.items() if not k.startswith("_") and k != "type"}


def check_start(start, sessions, allow_foreign: bool = False
                ) -> tuple[EnergyGrid | None, str | None]:
    """(stream grid, None) when the models can serve this scan, else (None, reason).

    The size limits are the protocol's: the decoder has already applied them to a
    scan_start from the wire; a resumed scan's comes from its sidecar file instead.
    A stream from an instrument a model was not trained for is refused unless
    `allow_foreign` (edge.instruments); an energy range it cannot serve, always."""
    if not (0 < start.width <= MAX_WIDTH and 0 < start.height <= MAX_HEIGHT):
        return None, (f"scan size {start.width}x{start.height} outside "
                      f"1..{MAX_WIDTH}x1..{MAX_HEIGHT}")
    if not 0 < start.channels <= MAX_CHANNELS:
        return None, f"{start.channels} channels outside 1..{MAX_CHANNELS}"
    try:
        dtype = np.dtype(getattr(start, "counts_dtype", "<u4")).name
    except TypeError:
        dtype = "?"
    if dtype not in ("uint16", "uint32"):
        return None, f"counts dtype {start.counts_dtype!r} is not uint16 or uint32"
    try:
        grid = start.grid
    except ValueError as e:
        return None, f"bad energy calibration: {e}"
    reason = refusal(sessions, grid)
    foreign = None if allow_foreign else instruments.refusal(start, sessions)
    if reason and foreign:
        reason = f"{reason}; also, {foreign}"
    reason = reason or foreign
    return (None, reason) if reason else (grid, None)


@dataclass
class ScanState:
    """An accepted scan and its accounting (SPEC.md 4.5: the per-scan counters).

    Every pixel of this scan that reaches the daemon ends in exactly one of: `recorded`
    (durable on disk; with recording off, taken), `refused` (by reason), or in flight
    (between receipt and the next flush). `not_inferred` is a subset of the recorded."""

    start: object  # wire.ScanStart
    grid: EnergyGrid
    canvas: Canvas
    engine: Engine
    recorder: Recorder | None
    dtype: str
    last_seq: int = 0  # last spectra.seq handled (0: none yet; -1: unknown, after a resume)
    seq_gaps: int = 0  # times seq jumped forward
    seq_missing: int = 0  # messages those jumps skipped: lost before they reached the daemon
    recorded: int = 0
    refused: Counter = field(default_factory=Counter)  # pixels, by reason
    not_inferred: Counter = field(default_factory=Counter)  # recorded pixels, by reason
    record_error: str = ""  # why recording stopped for this scan ("" while it works)
    end_status: str = ""  # how it closed (scan_end status, or "abort"); "" while open
    recording_status: str = ""  # the status its recording was closed with
    axis: AxisLock | None = None  # the check of the stream's energy axis (proto.energy_axis)
    held: list[tuple] = field(default_factory=list)  # recorded pixels waiting for it

    @property
    def scan_id(self) -> str:
        return self.start.scan_id

    @classmethod
    def open(cls, start, grid, sessions, max_batch, recorder, dtype="uint32",
             small=None) -> ScanState:
        names = tuple(sessions["elements"].manifest.outputs) if "elements" in sessions else ELEMENTS
        canvas = Canvas(start.height, start.width, names)
        engine = Engine(sessions, grid, max_batch, small=small)
        # served although foreign only when the daemon allows it (check_start refused else)
        canvas.foreign = frozenset(instruments.foreign_kinds(start, sessions))
        canvas.track_domain(engine.subspaces)
        if "trust" in sessions:
            canvas.threshold = sessions["trust"].manifest.training_domain.score_threshold
        check = getattr(sessions.get("elements"), "axis", None)
        axis = AxisLock(check, grid) if check is not None else None
        return cls(start, grid, canvas, engine, recorder, dtype, axis=axis)

    def for_inference(self, x, y, counts, live) -> list[tuple]:
        """The recorded pixels to infer now, as (x, y, counts, live) batches. While the
        stream's energy axis is being checked they wait (recorded: nothing is lost); once
        it is decided, every held pixel is released and read on the decided axis."""
        if self.axis is None or self.axis.verdict is not None:
            return [(x, y, counts, live)]
        self.axis.add(counts)
        self.held.append((x, y, counts, live))
        return self.release() if self.axis.ready else []

    def release(self) -> list[tuple]:
        """Decide the energy axis on what came (at scan end: whatever did) and hand back
        the pixels that waited for it."""
        if self.axis is None:
            return []
        verdict = self.axis.decide()
        if verdict.served != self.engine.grid:
            self.engine.restream(verdict.served)
        held, self.held = self.held, []
        return held

    @property
    def recording(self) -> bool:
        """This scan's pixels are being recorded (a recorder, and no write has failed)."""
        return self.recorder is not None and not self.record_error

    def note_seq(self, seq: int) -> None:
        """Track the scanner's seq: a jump forward is a gap of that many lost messages."""
        if self.last_seq >= 0 and seq > self.last_seq + 1:
            self.seq_gaps += 1
            self.seq_missing += seq - self.last_seq - 1
        self.last_seq = max(self.last_seq, seq)

    def check_spectra(self, msg) -> None:
        """Raise Rejected unless every pixel of this decoded message can be taken: the
        receiver checks of SPEC.md 4.2 (channels, counts dtype, coordinates). The seq is
        noted first: a refused message still arrived (it is no gap); its pixels are
        counted refused here."""
        self.note_seq(int(msg.seq))
        try:
            wire.check_in_scan(self.start, msg)
        except wire.ProtocolError as e:
            self.refused[e.reason] += len(msg.x)
            raise Rejected(e.reason, f"{e.path}: {e}", len(msg.x)) from e
        if self.recorder is not None and self.record_error:
            self.refused["record_error"] += len(msg.x)
            raise Rejected("record_error", f"scan {self.scan_id} cannot be recorded: "
                           f"{self.record_error}", len(msg.x))

    def counters(self) -> dict[str, int]:
        """The per-scan counters of `status` (SPEC.md 4.5), reasons as `<key>.<reason>`."""
        c = {
            "scan_pixels_accepted": self.recorded,
            "scan_pixels_recorded": self.recorded if self.recorder is not None else 0,
            "scan_pixels_refused": sum(self.refused.values()),
            "scan_pixels_not_inferred": sum(self.not_inferred.values()),
            "scan_last_seq": max(0, self.last_seq),
            "scan_seq_gaps": self.seq_gaps,
            "scan_seq_missing": self.seq_missing,
        }
        for key, by_reason in (("scan_pixels_refused", self.refused),
                               ("scan_pixels_not_inferred", self.not_inferred)):
            c |= {f"{key}.{reason}": n for reason, n in sorted(by_reason.items()) if n}
        return c

    def tally(self) -> dict:
        """The per-scan accounting, for the recording's `end` attribute and the status."""
        return {
            "pixels_recorded": self.recorded,
            "pixels_refused": dict(self.refused),
            "pixels_not_inferred": dict(self.not_inferred),
            "last_seq": max(0, self.last_seq),
            "seq_gaps": self.seq_gaps,
            "seq_missing": self.seq_missing,
            **({"energy_axis": self.axis.status()} if self.axis is not None else {}),
            # which background each element fit served (proto.continuum)
            **({"background": b} if (b := self.engine.backgrounds()) else {}),
        }
