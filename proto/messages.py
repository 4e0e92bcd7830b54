"""Wire protocol v1 message classes, limits and the one error type (see proto/SPEC.md).

The classes are plain frozen dataclasses with no validation in ``__post_init__``:
`proto.wire.encode` validates what it sends and `proto.wire.decode` validates what
it receives, through the same checks, so the hot decode path builds instances
without paying for a second pass. Arrays decoded from the wire are read-only
numpy views on the received bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from proto.energy import EnergyGrid

PROTOCOL_VERSION: tuple[int, int] = (1, 1)

# Limits (SPEC.md "Limits"). A receiver may configure smaller ones, never larger.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_CHANNELS = 16384
MAX_PIXELS_PER_MESSAGE = 4096
MAX_WIDTH = 16384
MAX_HEIGHT = 16384
MAX_ELEMENTS = 64  # element maps per preview
MAX_STRING = 65536  # any one msgpack str, bytes (UTF-8)
MAX_ID = 256  # scan_id, names, dictionary keys, characters
MAX_CONTAINER = 4096  # entries in any one msgpack array or map
MAX_PARTS = 65536  # replies one snapshot may take (1.1, SPEC.md 4.7)
MAX_DEPTH = 8  # nesting of free-form maps (instrument, detail)

# A well-formed pixel is always recorded; it is inferred only when its numbers allow it
# (SPEC.md 4.2 "Pixels that cannot be inferred"). Codes 1.. in a recording's
# `recording/not_inferred`, names on `status` counters; checked in this order.
NOT_INFERRED = ("live_time", "real_time", "count_rate")
MAX_COUNT_RATE = 1e9  # counts per live second, all channels: no XRF detector comes near

SCAN_STATUSES = ("success", "abort", "fail")
SCAN_PATTERNS = ("raster", "serpentine", "arbitrary")
PREVIEW_TOPICS = ("rgb", "elements", "trust")
PUB_TOPICS = (*PREVIEW_TOPICS, "status")
STATES = ("idle", "scanning")
CONTROL_COMMANDS = ("reload_models",)

# Every reason a ProtocolError may carry (SPEC.md "Errors").
REASONS = (
    "too_large",  # message or one of its parts over a limit (checked before allocating)
    "malformed",  # not one msgpack map, trailing bytes, bad UTF-8, type/version not first
    "unsupported_version",  # major version differs from ours
    "unknown_type",  # `type` names no message of this major version
    "missing_field",  # a required key is absent
    "bad_type",  # a value has the wrong msgpack type
    "bad_value",  # a value is out of range, not finite, or not one of the allowed words
    "bad_dtype",  # an array's dtype is not allowed for that field
    "bad_shape",  # an array's shape disagrees with its bytes or with other fields
    "bad_index",  # sparse indptr/index not monotonic or out of range
    "out_of_range",  # (receiver, against scan_start) pixel outside width x height
    "unknown_scan",  # (receiver) scan_id is not the scan in progress
)


class ProtocolError(ValueError):
    """A message broke the protocol: `path` names the field (dotted), `reason` is a code."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path, self.reason, self.detail = path, reason, detail
        text = f"{path or '<message>'}: {reason}"
        super().__init__(f"{text} ({detail})" if detail else text)

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (type(self), (self.path, self.reason, self.detail))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Message:
    """Base: `TYPE` is the wire `type`; equality compares array values, not identity."""

    TYPE: ClassVar[str] = ""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class ScanStart(Message):
    """Opens a scan: geometry, energy calibration and acquisition settings."""

    TYPE: ClassVar[str] = "scan_start"
    scan_id: str
    width: int
    height: int
    channels: int
    offset_kev: float
    gain_kev: float
    dwell_s: float
    beam_spot_um: float | None = None  # None: not known (1.1: optional, never invented)
    pixel_size_um: float | None = None
    # name + fingerprint (+ the description's tables): proto.identity; {} or no fingerprint:
    # the stream does not say which instrument it comes from
    instrument: dict = field(default_factory=dict)
    scan_pattern: str = "raster"
    counts_dtype: str = "<u4"

    @property
    def grid(self) -> EnergyGrid:
        return EnergyGrid(self.offset_kev, self.gain_kev, self.channels)


@dataclass(frozen=True, eq=False)
class Spectra(Message):
    """N pixels, columnar. `counts` is dense (N, C) uint16|uint32 after decode."""

    TYPE: ClassVar[str] = "spectra"
    scan_id: str
    seq: int
    x: np.ndarray
    y: np.ndarray
    live_time_s: np.ndarray
    real_time_s: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.counts.shape[0])


@dataclass(frozen=True, eq=False)
class ScanEnd(Message):
    TYPE: ClassVar[str] = "scan_end"
    scan_id: str
    status: str
    pixel_count: int
    detail: str = ""


@dataclass(frozen=True, eq=False)
class Preview(Message):
    """A region of a live canvas: rgb (h,w,3) uint8, elements (E,h,w) f32, trust (h,w) f32."""

    TYPE: ClassVar[str] = "preview"
    topic: str
    scan_id: str
    seq: int
    region: tuple[int, int, int, int]  # x0, y0, width, height
    full: bool
    names: tuple[str, ...]
    data: np.ndarray
    # 1.1: the model behind this topic was not trained for the scan's instrument (served
    # because the daemon allows foreign streams); (h, w) uint8 1 = outside the model's
    # training domain; trust only: the score above which a pixel is unfamiliar
    foreign: bool = False
    domain: np.ndarray | None = None
    threshold: float | None = None


@dataclass(frozen=True, eq=False)
class Status(Message):
    TYPE: ClassVar[str] = "status"
    scan_id: str
    seq: int
    state: str = "idle"
    counters: dict = field(default_factory=dict)  # str -> int >= 0
    rates: dict = field(default_factory=dict)  # str -> finite float (per second)
    latency_ms: dict = field(default_factory=dict)  # str -> finite float >= 0
    errors: dict = field(default_factory=dict)  # reason -> int >= 0 (rejected messages)
    detail: dict = field(default_factory=dict)  # free-form, JSON-like
    foreign: tuple[str, ...] = ()  # 1.1: topics served by a model foreign to the scan
    out_of_domain: dict = field(default_factory=dict)  # 1.1: topic -> fraction in 0..1
    refused: str = ""  # 1.1: non-empty: scan `scan_id` was refused at its scan_start, why


@dataclass(frozen=True, eq=False)
class SnapshotRequest(Message):
    TYPE: ClassVar[str] = "snapshot_request"
    topics: tuple[str, ...] = PREVIEW_TOPICS
    part: int = 0  # 1.1: which reply of a snapshot too big for one (SPEC.md 4.7)


@dataclass(frozen=True, eq=False)
class SnapshotReply(Message):
    TYPE: ClassVar[str] = "snapshot_reply"
    scan_id: str
    seq: int
    scan_start: ScanStart | None
    frames: tuple[Preview, ...]
    status: Status | None = None
    part: int = 0  # 1.1: this reply's part of the snapshot, 0 .. parts - 1
    parts: int = 1  # 1.1: replies the whole snapshot takes; ask for the others by `part`


@dataclass(frozen=True, eq=False)
class Control(Message):
    TYPE: ClassVar[str] = "control"
    command: str
    models: str | None = None  # folder of model bundles; None: the daemon's configured one


@dataclass(frozen=True, eq=False)
class PixelRequest(Message):
    """Asks for one recorded pixel's spectrum (a viewer's click), answered from the file."""

    TYPE: ClassVar[str] = "pixel_request"
    scan_id: str
    x: int
    y: int


@dataclass(frozen=True, eq=False)
class PixelReply(Message):
    """One recorded pixel: counts (C,) uint16|uint32 as recorded, its calibration and times."""

    TYPE: ClassVar[str] = "pixel_reply"
    scan_id: str
    x: int
    y: int
    counts: np.ndarray
    offset_kev: float
    gain_kev: float
    live_time_s: float
    real_time_s: float


@dataclass(frozen=True, eq=False)
class Error(Message):
    """Reply on the request socket to a request the daemon refused."""

    TYPE: ClassVar[str] = "error"
    reason: str
    path: str = ""
    detail: str = ""


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        ScanStart,
        Spectra,
        ScanEnd,
        Preview,
        Status,
        SnapshotRequest,
        SnapshotReply,
        Control,
        PixelRequest,
        PixelReply,
        Error,
    )
}
