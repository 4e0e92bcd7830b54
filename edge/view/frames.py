"""What goes to one browser, and how little is kept for it.

Per browser the viewer keeps one pending box per topic (what changed since that page was
last sent anything), its zoom rectangle and two flags: O(1) memory, whatever the page's
speed. Updates coalesce into the boxes while a page is busy; when a box grows past
`RESYNC_FRACTION` of the canvas it becomes the whole canvas: a slow page gets a resync,
never a backlog. Messages are built one at a time, just before they are sent.

Browser messages (all from the server):
- text JSON `{"t": "scan", ...ViewState.describe()}`: start over with this layout;
- text JSON `{"t": "detail", "level", "x", "y", "w", "h"}` or `{"t": "detail"}`: the zoomed
  rectangle, in full-resolution pixels (none: back to the overview);
- binary regions: uint32 LE header length, a JSON header (space-padded so the payload
  starts 4-byte aligned), then the raw little-endian payload: rgb uint8 [h, w, 3],
  elements float32 [E, h, w], trust float32 [h, w]. Header: t "region", topic, layer
  ("o" overview or "d" detail), level, x, y, w, h (in that level's pixels), gen, seq (the
  viewer's: every preview up to it is in the data), and for
  elements names and vmax (the full-resolution maximum of each plane), for trust the
  calibrated threshold (null: none), and `domain: true` when a uint8 [h, w] out-of-domain
  mask (1: outside the model's training domain; overview: any pixel of the block) follows;
- text JSON `{"t": "status", ...}`, `{"t": "link", "ok", "text"}`, `{"t": "pixel", ...}`.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable

import numpy as np

from edge.view.state import DOMAIN, TOPICS, ViewState, overview_level

RESYNC_FRACTION = 0.25
WHOLE = (0, 0, 1 << 30, 1 << 30)  # x0, y0, x1, y1: the whole canvas, whatever its size

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in full-resolution pixels, ends exclusive
Job = Callable[[], bytes | str | None]


class Browser:
    """One page's pending work. The event loop marks it, a worker thread builds from it:
    `lock` keeps the two apart (taken before the state's lock, never inside it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gen = -1
        self.pending: dict[str, Box] = {}
        self.detail: tuple[int, Box] | None = None  # level, aligned box
        self.rect: list | None = None  # what the page last asked to see (kept over resyncs)
        self.detail_new = False
        self.status_due = True
        self.resyncs = 0  # times pending work collapsed into a whole-canvas resend

    def mark(self, topic: str, box: tuple[int, int, int, int], width: int, height: int) -> None:
        """Add a changed full-resolution region (x0, y0, w, h) of `topic`."""
        x0, y0, w, h = box
        new = (x0, y0, x0 + w, y0 + h)
        with self.lock:
            self._merge(topic, new, width, height)

    def _merge(self, topic: str, new: Box, width: int, height: int) -> None:
        old = self.pending.get(topic)
        if old is not None:
            new = (min(old[0], new[0]), min(old[1], new[1]),
                   max(old[2], new[2]), max(old[3], new[3]))
        if new != WHOLE and (new[2] - new[0]) * (new[3] - new[1]) > \
                RESYNC_FRACTION * width * height and old is not None:
            new = WHOLE
            self.resyncs += 1
        self.pending[topic] = new

    def zoom(self, state: ViewState, rect: list | None) -> None:
        """The page shows full-resolution rectangle `rect` [x, y, w, h] (None: everything);
        takes the state's lock: call it off the event loop."""
        with self.lock:
            self._zoom(state, rect)

    def _zoom(self, state: ViewState, rect: list | None) -> None:
        with state.lock:
            self.rect, self.detail, self.detail_new = rect, None, True
            if rect is None or state.level == 0:
                return
            x, y, w, h = (int(v) for v in rect)
            x, y = max(0, x), max(0, y)
            w, h = min(w, state.width - x), min(h, state.height - y)
            if w < 1 or h < 1:
                return
            level = overview_level(w, h, state.max_side)
            if level >= state.level:
                return
            f = 1 << level
            box = (x // f * f, y // f * f, min(state.width, -(-(x + w) // f) * f),
                   min(state.height, -(-(y + h) // f) * f))
            self.detail = (level, box)

    def jobs(self, state: ViewState) -> list[Job]:
        """This round's messages, as jobs that build each one when called (takes the state's
        lock: call it off the event loop)."""
        out: list[Job] = []
        with self.lock, state.lock:
            if self.gen != state.gen:
                self.gen = state.gen
                self._zoom(state, self.rect)  # the same rectangle of the new layout, if any
                desc = {"t": "scan", **state.describe()}
                out.append(lambda: json.dumps(desc))
                pending = {t: WHOLE for t in TOPICS if state.has(t)}
                self.pending = {}
            else:
                pending, self.pending = self.pending, {}
            gen, detail, new_detail = state.gen, self.detail, False
            if self.detail_new:
                self.detail_new = False
                lvl, (x0, y0, x1, y1) = detail or (0, (0, 0, 0, 0))
                msg = {"t": "detail"} | ({"level": lvl, "x": x0, "y": y0, "w": x1 - x0,
                                          "h": y1 - y0} if detail else {})
                out.append(lambda: json.dumps(msg))
                new_detail = detail is not None  # all of it, for every topic; not the overview
            for topic in TOPICS:
                if not state.has(topic):
                    continue
                box = pending.get(topic)
                if box is not None:
                    out.append(_region_job(state, topic, "o", state.level, box, gen))
                inter = None if detail is None else (
                    detail[1] if new_detail else box and _intersect(box, detail[1]))
                if inter is not None:
                    out.append(_region_job(state, topic, "d", detail[0], inter, gen))
            if self.status_due:
                self.status_due = False
                out.append(lambda: status_json(state))
        return out


def _intersect(a: Box, b: Box) -> Box | None:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _region_job(state: ViewState, topic: str, layer: str, level: int, box: Box, gen: int
                ) -> Job:
    def build() -> bytes | None:
        with state.lock:
            if state.gen != gen or not state.has(topic):
                return None  # the scan changed meanwhile: the next round starts over
            f = 1 << level
            x0, y0 = box[0] // f * f, box[1] // f * f
            x1, y1 = min(box[2], state.width), min(box[3], state.height)
            if x1 <= x0 or y1 <= y0:
                return None
            data = state.crop(topic, level, x0, y0, x1 - x0, y1 - y0)
            h, w = data.shape[1:] if topic == "elements" else data.shape[:2]
            header = {"t": "region", "topic": topic, "layer": layer, "level": level,
                      "x": x0 // f, "y": y0 // f, "w": int(w), "h": int(h), "gen": gen,
                      "seq": state.topic_seq.get(topic, state.seq)}
            if topic == "elements":
                header |= {"names": list(state.names),
                           "vmax": [float(v) for v in state.vmax]}
            if topic == "trust":
                header["threshold"] = state.threshold
            parts = [data]
            if state.has(DOMAIN + topic):
                header["domain"] = True
                parts.append(state.crop(DOMAIN + topic, level, x0, y0, x1 - x0, y1 - y0))
            return pack(header, *parts)

    return build


def pack(header: dict, *arrays: np.ndarray) -> bytes:
    head = json.dumps(header).encode()
    head += b" " * ((-(4 + len(head))) % 4)
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    return struct.pack("<I", len(head)) + head + body


def status_json(state: ViewState) -> str | None:
    s = state.status
    if s is None:
        return None
    return json.dumps({
        "t": "status", "scan_id": s.scan_id, "seq": s.seq, "state": s.state,
        "counters": s.counters, "rates": s.rates, "latency_ms": s.latency_ms,
        "errors": s.errors, "detail": s.detail, "view_scan": state.scan_id,
        "foreign": list(getattr(s, "foreign", ())), "refused": getattr(s, "refused", ""),
        "out_of_domain": dict(getattr(s, "out_of_domain", {})),
    }, default=str)
