"""Previews out: per-topic rate limit, regions plus periodic full frames, snapshots.

PUB never blocks ingest: it sends with NOBLOCK under a send high-water mark, so
a slow subscriber loses previews (it resyncs with a snapshot), never the
scanner's pixels. The ROUTER side answers snapshot requests with the whole
current state and the sequence number it includes (the ZeroMQ Guide's Clone
pattern: subscribe first, snapshot, drop updates at or below its sequence).
"""

from __future__ import annotations

import zmq

from edge.canvas import Canvas
from proto import wire
from proto.messages import PREVIEW_TOPICS, PUB_TOPICS


class Publisher:
    def __init__(self, pub: zmq.Socket, rate_hz: float, full_every_s: float) -> None:
        self.pub = pub
        self.min_gap = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.full_every_s = full_every_s
        self._last: dict[str, float] = dict.fromkeys(PUB_TOPICS, 0.0)
        self._last_full: dict[str, float] = dict.fromkeys(PREVIEW_TOPICS, 0.0)
        self.sent = 0
        self.dropped = 0

    def send(self, topic: str, message: object) -> None:
        try:
            self.pub.send_multipart([topic.encode(), wire.encode(message)], flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:  # a slow subscriber: it loses this preview and resyncs later
            self.dropped += 1

    def frame(
        self, canvas: Canvas, topic: str, scan_id: str, seq: int, region=None
    ) -> wire.Preview:
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
        )

    def frames(self, canvas: Canvas, scan_id: str, seq: int, topics=PREVIEW_TOPICS) -> list:
        return [self.frame(canvas, t, scan_id, seq) for t in topics if t in PREVIEW_TOPICS]

    def publish(
        self, canvas: Canvas, scan_id: str, seq: int, now: float, force: bool = False
    ) -> None:
        """Send what changed, per topic, no more often than the rate limit."""
        for topic in PREVIEW_TOPICS:
            if not force and (now - self._last[topic] < self.min_gap or not canvas.dirty(topic)):
                continue
            region = canvas.take_dirty(topic)
            if force or now - self._last_full[topic] >= self.full_every_s:
                region = None
                self._last_full[topic] = now
            elif region is None:
                continue
            self.send(topic, self.frame(canvas, topic, scan_id, seq, region))
            self._last[topic] = now

    def status_due(self, now: float, every_s: float) -> bool:
        if now - self._last["status"] >= max(every_s, self.min_gap):
            self._last["status"] = now
            return True
        return False

