"""Previews out: per-topic rate limit, regions plus periodic full frames, snapshots.

PUB never blocks ingest: it sends with NOBLOCK under a send high-water mark, so
a slow subscriber loses previews (it resyncs with a snapshot), never the
scanner's pixels. The ROUTER side answers snapshot requests with the whole
current state and the sequence number it includes (the ZeroMQ Guide's Clone
pattern: subscribe first, snapshot, drop updates at or below its sequence).
"""

from __future__ import annotations

import logging

import zmq

from edge.canvas import Canvas
from proto import wire
from proto.messages import PREVIEW_TOPICS, PUB_TOPICS

log = logging.getLogger("edge.publisher")


class Publisher:
    def __init__(self, pub: zmq.Socket, rate_hz: float, full_every_s: float) -> None:
        self.pub = pub
        self.min_gap = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.full_every_s = full_every_s
        self._last: dict[str, float] = dict.fromkeys(PUB_TOPICS, 0.0)
        self._last_full: dict[str, float] = dict.fromkeys(PREVIEW_TOPICS, 0.0)
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
            foreign=topic in canvas.foreign,
            domain=canvas.domain_region(topic, region),
            threshold=canvas.threshold if topic == "trust" else None,
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
            self._last[topic] = now
            try:
                frame = self.frame(canvas, topic, scan_id, seq, region)
            except Exception as e:  # a canvas that cannot be framed: say so
                self.fail(topic, e)
                continue
            self.send(topic, frame)

    def status_due(self, now: float, every_s: float) -> bool:
        if now - self._last["status"] >= max(every_s, self.min_gap):
            self._last["status"] = now
            return True
        return False

