"""Previews out: per-topic rate limit, regions plus periodic full frames, snapshots.

A frame or region over `max_preview_bytes` goes out as tiles, and a snapshot over
`max_reply_bytes` in parts (edge.tiles, SPEC.md 4.4 and 4.7), so no message outgrows
the limits whatever the canvas; a canvas of k tiles is refreshed a tile at a time, one
every `full_every_s` in turn (the whole canvas every k periods), so refreshing costs one
tile's worth a period, never a run of turns each encoding a tile.
Tiles wait in a queue and go out at most `burst_bytes` of data per loop turn (`drain`;
a tile larger than that alone), so a big frame never holds the loop (ingest, requests) for
longer than one tile's encoding.

PUB never blocks ingest: it sends with NOBLOCK under a send high-water mark, so
a slow subscriber loses previews (it resyncs with a snapshot), never the
scanner's pixels. The ROUTER side answers snapshot requests with the whole
current state and the sequence number it includes (the ZeroMQ Guide's Clone
pattern: subscribe first, snapshot, drop updates at or below its sequence).
"""

from __future__ import annotations

import logging
from collections import deque

import zmq

from edge.canvas import Canvas
from edge.tiles import Region, bytes_per_pixel, parts, tiles
from proto import wire
from proto.messages import PREVIEW_TOPICS, PUB_TOPICS

log = logging.getLogger("edge.publisher")


class Publisher:
    def __init__(self, pub: zmq.Socket, rate_hz: float, full_every_s: float,
                 max_preview_bytes: int = 16 << 20, max_reply_bytes: int = 64 << 20) -> None:
        self.pub = pub
        self.max_preview_bytes = max_preview_bytes
        self.max_reply_bytes = max_reply_bytes
        # data encoded per drain: one 16 MiB tile is ~15-30 ms of encoding on an idle core,
        # ~50-80 ms on a busy one; four a turn (the old burst) held a 4096 x 4096 scan's
        # ingest 0.2-0.9 s a turn while its full frames went out. An eighth more lets the
        # other topics' small regions (a few rows) follow a full tile in the same turn
        self.burst_bytes = max_preview_bytes + max_preview_bytes // 8
        self._turn = 0  # which topic a drain offers first: a big tile of each gets its turn
        self._queue: dict[str, deque[Region]] = {t: deque() for t in PREVIEW_TOPICS}
        self._source: tuple[Canvas, str] | None = None  # the canvas the queued tiles are of
        self.min_gap = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.full_every_s = full_every_s
        self._last: dict[str, float] = dict.fromkeys(PUB_TOPICS, 0.0)
        self._last_full: dict[str, float] = dict.fromkeys(PREVIEW_TOPICS, 0.0)
        # topic -> when it was last found unchanged. The periodic full frame heals what a
        # subscriber lost of the previews, and none go out while nothing changes: the time
        # does not count, so a scan that starts (or resumes) streaming after a wait gets its
        # regions, not a refresh of the whole canvas at once (4096^2: 8-42 tiles)
        self._idle_since: dict[str, float] = {}
        self._next_tile: dict[str, int] = dict.fromkeys(PREVIEW_TOPICS, 0)  # rolling refresh
        self.sent = 0
        # per topic: PUB drops silently for a slow subscriber (ZeroMQ tells the sender
        # nothing), so the daemon cannot count those; a subscriber can, by comparing what
        # it received of a topic with these (SPEC.md 4.5)
        self.sent_by_topic: dict[str, int] = dict.fromkeys(PUB_TOPICS, 0)
        self.dropped = 0  # sends ZeroMQ refused (EAGAIN): PUB never does, so this stays 0
        self.failed = 0  # messages that could not be built or encoded (logged, never raised)
        self.last_failure = ""

    def send(self, topic: str, message: object) -> bool:
        """Encode and send one message; False when it was dropped or failed. Never raises:
        whatever a preview or status holds, a failure to publish it must not stop ingest."""
        try:
            data = wire.encode(message)
            self.pub.send_multipart([topic.encode(), data], flags=zmq.NOBLOCK)
        except zmq.Again:  # a slow subscriber: it loses this preview and resyncs later
            self.dropped += 1
            return False
        except Exception as e:  # MemoryError included: the loop goes on
            self.fail(topic, e)
            return False
        self.sent += 1
        self.sent_by_topic[topic] = self.sent_by_topic.get(topic, 0) + 1
        return True

    def fail(self, topic: str, e: BaseException) -> None:
        """Count and log a publication that failed (the first, then every 100th)."""
        self.failed += 1
        self.last_failure = f"{topic}: {type(e).__name__}: {e}"[:300]
        if self.failed == 1 or self.failed % 100 == 0:
            log.error("publishing %s failed (%d so far): %s", topic, self.failed,
                      self.last_failure)

    def regions(self, canvas: Canvas, topic: str, region: Region | None = None) -> list[Region]:
        """The tiles a region (None: the whole canvas) of a topic is sent as."""
        return tiles(region or (0, 0, canvas.width, canvas.height), _bpp(canvas, topic),
                     self.max_preview_bytes)

    def frame(
        self, canvas: Canvas, topic: str, scan_id: str, seq: int, region=None
    ) -> wire.Preview:
        if region is not None and tuple(region) == (0, 0, canvas.width, canvas.height):
            region = None
        full = region is None
        names = canvas.element_names if topic == "elements" else {
            "rgb": ("R", "G", "B"), "trust": ("trust",)}[topic]
        return wire.Preview(
            topic=topic,
            scan_id=scan_id,
            seq=seq,
            region=(0, 0, canvas.width, canvas.height) if full else tuple(region),
            full=full,
            names=tuple(names),
            data=canvas.region(topic, region),
            foreign=topic in canvas.foreign,
            domain=canvas.domain_region(topic, region),
            threshold=canvas.threshold if topic == "trust" else None,
        )

    def frames(self, canvas: Canvas, scan_id: str, seq: int, topics=PREVIEW_TOPICS) -> list:
        """Every frame of a snapshot of these topics: tiles where a full frame is too big."""
        return [self.frame(canvas, t, scan_id, seq, r) for t, r in self._items(canvas, topics)]

    def snapshot_part(self, canvas: Canvas, scan_id: str, seq: int, topics=PREVIEW_TOPICS,
                      part: int = 0) -> tuple[list, int]:
        """(frames of snapshot part `part`, how many parts): whole tiles, in order, at most
        max_reply_bytes of data per part, and no more than a drain's `burst_bytes`: a
        viewer that joins a 4096 x 4096 scan then holds ingest one tile's encoding a part
        (64 MiB parts held it 0.3-1.1 s each, 11 times). A part beyond the last is refused
        (bad_value)."""
        items = self._items(canvas, topics)
        groups = parts([r[2] * r[3] * _bpp(canvas, t) for t, r in items],
                       min(self.max_reply_bytes, self.burst_bytes))
        if not 0 <= part < len(groups):
            raise wire.ProtocolError("part", "bad_value",
                                     f"part {part}: this snapshot has parts 0..{len(groups) - 1}")
        chosen = [items[i] for i in groups[part]]
        return [self.frame(canvas, t, scan_id, seq, r) for t, r in chosen], len(groups)

    def _items(self, canvas: Canvas, topics) -> list[tuple[str, Region]]:
        return [(t, r) for t in PREVIEW_TOPICS if t in topics for r in self.regions(canvas, t)]

    def publish(
        self, canvas: Canvas, scan_id: str, seq: int, now: float, force: bool = False
    ) -> None:
        """Queue what changed, per topic, no more often than the rate limit (everything when
        forced, and a periodic full frame), then send a burst of the queue."""
        if self._source is None or self._source[0] is not canvas:
            for q in self._queue.values():  # another scan's canvas: its tiles are moot
                q.clear()
            self._source = (canvas, scan_id)
        for topic in PREVIEW_TOPICS:
            if not force and not canvas.dirty(topic):
                self._idle_since.setdefault(topic, now)
                continue
            if topic in self._idle_since:  # the refresh clock stops while nothing changes
                self._last_full[topic] += now - self._idle_since.pop(topic)
            if not force and now - self._last[topic] < self.min_gap:
                continue
            region = canvas.take_dirty(topic)
            tiles, queue = self.regions(canvas, topic), self._queue[topic]
            due = now - self._last_full[topic] >= self.full_every_s
            if force or (due and len(tiles) == 1):
                queue.clear()  # the whole frame covers what was waiting
                queue.extend(tiles)
                self._last_full[topic], self._next_tile[topic] = now, 0
            elif region is None:
                continue
            else:  # what changed goes ahead of a full frame's tiles still waiting: every
                # frame holds the canvas as it is when sent, so the order only decides what a
                # subscriber sees first (a 4096 x 4096 frame is 4-34 tiles, a turn each)
                queue.extendleft(reversed(self.regions(canvas, topic, region)))
                if due:  # the rolling refresh's next tile, behind what changed
                    queue.append(tiles[self._next_tile[topic] % len(tiles)])
                    self._last_full[topic] = now
                    self._next_tile[topic] += 1
            self._last[topic] = now
        self.drain(seq)

    @property
    def pending(self) -> int:
        """Tiles waiting to be sent."""
        return sum(len(q) for q in self._queue.values())

    def drain(self, seq: int) -> None:
        """Send queued tiles, topics in turn, up to `burst_bytes` of data (the first tile
        whatever its size), with the canvas's current data (absolute values: the frame says
        what `seq` includes when it is sent). The topic offered first rotates, so a big
        tile waits at most a drain per topic behind the others' small regions."""
        if self._source is None:
            return
        canvas, scan_id = self._source
        order = list(self._queue.items())
        order = order[self._turn:] + order[:self._turn]
        self._turn = (self._turn + 1) % len(order)
        spent, progress = 0, True
        while progress and self.pending:
            progress = False
            for topic, q in order:
                if not q:
                    continue
                size = q[0][2] * q[0][3] * _bpp(canvas, topic)
                if spent and spent + size > self.burst_bytes:
                    continue
                spent += size
                progress = True
                tile = q.popleft()
                try:
                    frame = self.frame(canvas, topic, scan_id, seq, tile)
                except Exception as e:  # a canvas that cannot be framed: say so
                    self.fail(topic, e)
                    q.clear()
                    continue
                self.send(topic, frame)

    def status_due(self, now: float, every_s: float) -> bool:
        if now - self._last["status"] >= max(every_s, self.min_gap):
            self._last["status"] = now
            return True
        return False


def _bpp(canvas: Canvas, topic: str) -> int:
    """Bytes per pixel of a topic's preview: its data, and its out-of-domain mask if kept."""
    masks = getattr(canvas, "domain", {})
    return bytes_per_pixel(topic, len(canvas.element_names)) + (1 if topic in masks else 0)

