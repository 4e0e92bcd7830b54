"""Wire protocol v1: the public face of `decode` and `encode` (normative text: SPEC.md).

One msgpack map per ZeroMQ message, ``type`` then ``version`` first, string keys,
unknown keys ignored, numeric arrays as ``{dtype, shape, bytes}`` little-endian.
Whatever `encode` emits `decode` accepts, and anything invalid fails with one
`ProtocolError(path, reason)`. Behind this module:

- `proto.messages`: the message classes, limits and reason codes;
- `proto.checks`: the validation primitives (scalars, typed arrays, header);
- `proto.schema`: one check per message type, and `check_in_scan`;
- `proto.fastpath`: the hot `spectra` decode, checked against the careful one;
- `proto.encode`: `to_wire` and `encode`.
"""

from __future__ import annotations

import msgpack

from proto.checks import fail, header
from proto.encode import encode, to_wire
from proto.fastpath import FAST_CHECKS
from proto.fastpath import fast_spectra as _fast_spectra  # noqa: F401  (fast/careful test)
from proto.messages import (
    MAX_CHANNELS,
    MAX_CONTAINER,
    MAX_HEIGHT,
    MAX_MESSAGE_BYTES,
    MAX_PIXELS_PER_MESSAGE,
    MAX_STRING,
    MAX_WIDTH,
    MESSAGE_TYPES,
    PREVIEW_TOPICS,
    PROTOCOL_VERSION,
    PUB_TOPICS,
    REASONS,
    Control,
    Error,
    Message,
    PixelReply,
    PixelRequest,
    Preview,
    ProtocolError,
    ScanEnd,
    ScanStart,
    SnapshotReply,
    SnapshotRequest,
    Spectra,
    Status,
)
from proto.schema import check_in_scan
from proto.schema import check_spectra as _check_spectra  # noqa: F401  (fast/careful test)

__all__ = [
    "MAX_CHANNELS",
    "MAX_HEIGHT",
    "MAX_MESSAGE_BYTES",
    "MAX_PIXELS_PER_MESSAGE",
    "MAX_WIDTH",
    "MESSAGE_TYPES",
    "PREVIEW_TOPICS",
    "PROTOCOL_VERSION",
    "PUB_TOPICS",
    "REASONS",
    "Control",
    "Error",
    "Message",
    "PixelReply",
    "PixelRequest",
    "Preview",
    "ProtocolError",
    "ScanEnd",
    "ScanStart",
    "SnapshotReply",
    "SnapshotRequest",
    "Spectra",
    "Status",
    "check_in_scan",
    "decode",
    "encode",
    "from_pub_frames",
    "pub_frames",
    "to_wire",
]

_unpackb = msgpack.unpackb  # raw=False and strict_map_key=True are its defaults


def _map(pairs: list) -> dict:
    """A msgpack map, refused when a key comes twice (SPEC.md 2): which of the two values
    counts would differ between implementations. Costs a few us a message (one Python
    call per map; measured 2-9 us on a 1- or 16-pixel spectra message of 25-60 us)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("a map has the same key twice")
    return d


def decode(buf: bytes | bytearray | memoryview, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Bytes of one ZeroMQ message -> a validated message; ProtocolError otherwise.

    The length is checked before anything is unpacked, and msgpack is told the
    largest string, bin, array and map it may build, so no forged length can make
    it allocate more than the buffer's size.
    """
    size = len(buf)
    if size > max_bytes:
        raise fail("", "too_large", f"{size} bytes > {max_bytes}")
    try:
        m = _unpackb(
            buf,
            use_list=False,
            max_bin_len=size,
            max_str_len=min(size, MAX_STRING),
            max_array_len=min(size, MAX_CONTAINER),
            max_map_len=min(size, MAX_CONTAINER),
            max_ext_len=0,
            object_pairs_hook=_map,
        )
    except ValueError as e:  # includes msgpack's ExtraData, FormatError, StackError
        text = str(e)  # ext types are refused through max_ext_len=0: malformed, not large
        reason = "too_large" if "exceeds max" in text and "max_ext_len" not in text else "malformed"
        raise fail("", reason, text) from None
    except Exception as e:  # TypeError (unhashable key), UnicodeDecodeError, ...
        raise fail("", "malformed", f"{type(e).__name__}: {e}") from None
    if type(m) is not dict:
        raise fail("", "malformed", "a message is one msgpack map")
    return FAST_CHECKS[header(m)](m, "")


def pub_frames(msg: Preview | Status) -> list[bytes]:
    """The two frames of a PUB message: topic, then the map."""
    topic = msg.topic if isinstance(msg, Preview) else "status"
    return [topic.encode(), encode(msg)]


def from_pub_frames(frames: list[bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> Preview | Status:
    """Decode a 2-frame PUB message, checking that the topic frame matches the map."""
    if len(frames) != 2:
        raise fail("", "malformed", "a PUB message has two frames: topic, map")
    msg = decode(frames[1], max_bytes)
    topic = msg.topic if isinstance(msg, Preview) else getattr(msg, "TYPE", "")
    if not isinstance(msg, Preview | Status) or bytes(frames[0]) != topic.encode():
        raise fail("type", "bad_value", "topic frame disagrees with the message")
    return msg
