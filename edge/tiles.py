"""Big canvases in pieces under the message limits (SPEC.md 4.4 tiles, 4.7 parts).

A preview whose data would exceed `max_preview_bytes` goes out as tiles: rectangles
of the region, each within the limit, that together cover it. A snapshot whose tiles
exceed `max_reply_bytes` goes out in parts: the client asks for each in turn
(`fetch_snapshot`). A 4096 x 4096 scan's eight element maps are 537 MB, its whole
snapshot 654 MB; msgpack cannot even pack a message over 4 GiB.
"""

from __future__ import annotations

from collections.abc import Callable

from proto import wire

Region = tuple[int, int, int, int]  # x0, y0, width, height


def bytes_per_pixel(topic: str, planes: int) -> int:
    """Bytes of preview `data` per canvas pixel: rgb uint8 x3, elements float32 x planes,
    trust float32 (SPEC.md 4.4)."""
    return {"rgb": 3, "elements": 4 * max(1, planes), "trust": 4}[topic]


def tiles(region: Region, bpp: int, max_bytes: int) -> list[Region]:
    """Rectangles covering `region`, row-major, each holding at most `max_bytes` of data
    (one pixel at least): whole rows where a row fits, else pieces of a row."""
    x0, y0, w, h = region
    tw = min(w, max(1, max_bytes // bpp))
    th = min(h, max(1, max_bytes // (tw * bpp)))
    return [(x, y, min(tw, x0 + w - x), min(th, y0 + h - y))
            for y in range(y0, y0 + h, th) for x in range(x0, x0 + w, tw)]


def parts(sizes: list[int], max_bytes: int) -> list[list[int]]:
    """Indices of `sizes` grouped in order into parts of at most `max_bytes` each (an item
    larger than that alone in its part); at least one part, maybe empty."""
    groups: list[list[int]] = [[]]
    total = 0
    for i, size in enumerate(sizes):
        if groups[-1] and total + size > max_bytes:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def fetch_snapshot(request: Callable[[wire.SnapshotRequest], object],
                   topics: tuple[str, ...] = wire.PREVIEW_TOPICS,
                   attempts: int = 3) -> tuple[wire.SnapshotReply, list[wire.Preview]]:
    """A whole snapshot: part 0's reply (its seq and status are the snapshot's) and the
    frames of every part. Starts again from part 0 when the scan changes between parts;
    `request` sends one message and returns the decoded reply (an error raises)."""
    for _ in range(attempts):
        first = _reply(request(wire.SnapshotRequest(topics, part=0)))
        frames = list(first.frames)
        for part in range(1, first.parts):
            more = _reply(request(wire.SnapshotRequest(topics, part=part)))
            if (more.scan_id, more.parts) != (first.scan_id, first.parts):
                break  # another scan began between the parts
            frames.extend(more.frames)
        else:
            return first, frames
    raise RuntimeError(f"the daemon's scan changed during {attempts} snapshots in parts")


def _reply(msg: object) -> wire.SnapshotReply:
    if isinstance(msg, wire.SnapshotReply):
        return msg
    if isinstance(msg, wire.Error):
        raise RuntimeError(f"snapshot refused: {msg.reason} {msg.path} {msg.detail}".strip())
    raise RuntimeError(f"snapshot answered with a {type(msg).__name__}")
