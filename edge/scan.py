"""One scan's lifecycle: accepted or refused at scan_start, then fed, then closed.

`check_start` decides whether the loaded models can serve a stream; `ScanState`
holds the canvas, the inference engine and the recorder of an accepted scan,
and `check_spectra` applies the per-message rules (the wire decoder has already
checked types and shapes of the message itself).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edge.canvas import Canvas
from edge.inference import Engine, refusal
from edge.recorder import Recorder
from proto import wire
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid
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


def check_start(start, sessions) -> tuple[EnergyGrid | None, str | None]:
    """(stream grid, None) when the models can serve this scan, else (None, reason).

    The size limits are the protocol's: the decoder has already applied them to a
    scan_start from the wire; a resumed scan's comes from its sidecar file instead."""
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
    return (None, reason) if reason else (grid, None)


@dataclass
class ScanState:
    start: object  # wire.ScanStart
    grid: EnergyGrid
    canvas: Canvas
    engine: Engine
    recorder: Recorder | None
    dtype: str
    last_seq: int = -1
    seq_gaps: int = 0
    end_status: str = ""  # how it closed (scan_end status, or "abort"); "" while open

    @property
    def scan_id(self) -> str:
        return self.start.scan_id

    @classmethod
    def open(cls, start, grid, sessions, max_batch, recorder, dtype="uint32",
             small=None) -> ScanState:
        names = tuple(sessions["elements"].manifest.outputs) if "elements" in sessions else ELEMENTS
        canvas = Canvas(start.height, start.width, names)
        engine = Engine(sessions, grid, max_batch, small=small)
        return cls(start, grid, canvas, engine, recorder, dtype)

    def check_spectra(self, msg) -> None:
        """Raise Rejected unless every pixel of this decoded message can be taken: the
        receiver checks of SPEC.md 4.2 (channels, counts dtype, coordinates), then the seq."""
        try:
            wire.check_in_scan(self.start, msg)
        except wire.ProtocolError as e:
            raise Rejected(e.reason, f"{e.path}: {e}", len(msg.x)) from e
        seq = int(msg.seq)
        if seq != self.last_seq + 1 and self.last_seq >= 0:
            self.seq_gaps += 1
        self.last_seq = max(self.last_seq, seq)
