"""`edge watch`: follow the daemon's previews and write PNGs.

The ZeroMQ Guide's Clone pattern: subscribe first (so nothing is missed), ask
for a snapshot, drop every update at or below the snapshot's sequence, then
apply updates as they come. A client that joins late, or falls behind and loses
previews to the PUB high-water mark, ends up with the same images.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import zmq

from edge import png
from proto import wire


class Mirror:
    """A client-side copy of the daemon's canvases, built from previews."""

    def __init__(self) -> None:
        self.scan_id = ""
        self.seq = -1
        self.rgb: np.ndarray | None = None
        self.elements: np.ndarray | None = None
        self.trust: np.ndarray | None = None
        self.names: tuple[str, ...] = ()
        self.status: wire.Status | None = None
        self.applied = 0

    def apply(self, p: wire.Preview) -> None:
        x0, y0, w, h = p.region
        if p.scan_id != self.scan_id:
            if not p.full:
                return  # a region of a scan we have no frame of: wait for a full one
            self.scan_id, self.rgb, self.elements, self.trust = p.scan_id, None, None, None
        data = np.asarray(p.data)
        current = getattr(self, p.topic)
        if p.full or current is None:
            if not p.full:
                return
            setattr(self, p.topic, data.copy())
        elif p.topic == "elements":
            current[:, y0:y0 + h, x0:x0 + w] = data
        else:
            current[y0:y0 + h, x0:x0 + w] = data
        if p.topic == "elements":
            self.names = tuple(p.names)
        self.seq = max(self.seq, p.seq)
        self.applied += 1


class Watcher:
    """Subscriber + snapshot client; `poll()` applies whatever arrived."""

    def __init__(self, previews: str, snapshot: str, timeout_s: float = 10.0) -> None:
        self.ctx = zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 10_000)
        self.sub.setsockopt(zmq.LINGER, 0)
        for topic in wire.PUB_TOPICS:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.sub.connect(previews)
        self.snapshot_endpoint = snapshot
        self.mirror = Mirror()
        self.snapshot_seq = -1
        self.ended: str | None = None  # the scan the latest status says has ended
        self.timeout_s = timeout_s
        time.sleep(0.2)  # let the subscription reach the publisher before the snapshot

    def request(self, message, timeout_s: float | None = None):
        return request(self.snapshot_endpoint, message, timeout_s or self.timeout_s)

    def resync(self) -> wire.SnapshotReply:
        reply = self.request(wire.SnapshotRequest())
        self.snapshot_seq = reply.seq
        for frame in reply.frames:
            self.mirror.apply(frame)
        self.mirror.seq = reply.seq
        self.mirror.status = reply.status
        return reply

    def poll(self, timeout_ms: int = 100) -> int:
        """Apply every message waiting (after waiting up to timeout_ms for the first)."""
        n = 0
        while self.sub.poll(timeout_ms if n == 0 else 0):
            msg = wire.from_pub_frames(self.sub.recv_multipart())
            n += 1
            if isinstance(msg, wire.Status):
                self.mirror.status = msg
                self.ended = ended_scan(msg)
                continue
            if msg.seq <= self.snapshot_seq and msg.scan_id == self.mirror.scan_id:
                continue  # already in the snapshot
            self.mirror.apply(msg)
        return n

    def close(self) -> None:
        self.sub.close(0)


def ended_scan(status: wire.Status) -> str | None:
    """The scan a status says has ended, else None (SPEC.md 4.5: `state` "idle" with a
    `scan_id`). Every status while idle says so, so losing one to the PUB high-water mark
    loses nothing; a "scanning" one clears it, so a re-run of the same id is followed."""
    return status.scan_id if status.state == "idle" and status.scan_id else None


def request(endpoint: str, message, timeout_s: float = 10.0):
    """One request to the daemon's ROUTER (snapshot, status, control), one reply."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(wire.encode(message))
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply from {endpoint} in {timeout_s} s")
        return wire.decode(sock.recv(), max_bytes=wire.MAX_MESSAGE_BYTES)
    finally:
        sock.close(0)


def write_pngs(mirror: Mirror, folder: str | Path, prefix: str = "") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if mirror.rgb is not None:
        written.append(png.write_png(folder / f"{prefix}rgb.png", png.upscale(mirror.rgb, 384)))
    if mirror.elements is not None:
        names = mirror.names or tuple(str(i) for i in range(len(mirror.elements)))
        panels = [png.panel(m, f"{n} c/s") for n, m in zip(names, mirror.elements, strict=False)]
        written.append(png.write_png(folder / f"{prefix}elements.png", png.grid(panels)))
    if mirror.trust is not None:
        written.append(png.write_png(
            folder / f"{prefix}trust.png", png.panel(mirror.trust, "trust", 384)))
    return written


def watch(
    previews: str, snapshot: str, out: str | Path, *, every_s: float = 3.0,
    until_end: bool = True, timeout_s: float = 600.0, quiet: bool = False,
) -> Mirror:
    """Follow the daemon; write PNGs every `every_s` and when the scan ends."""
    w = Watcher(previews, snapshot)
    try:
        snap = w.resync()
        # a scan already over when we join is not the one to wait for: wait for the next
        done_before = snap.scan_id if snap.status and snap.status.state == "idle" else None
        t_end = time.monotonic() + timeout_s
        last_png = 0.0
        while time.monotonic() < t_end:
            w.poll(200)
            if w.mirror.seq > snap.seq:
                done_before = None  # a scan started after we joined, even one of the same id
            now = time.monotonic()
            if now - last_png >= every_s:
                write_pngs(w.mirror, out)
                last_png = now
                if not quiet:
                    s = w.mirror.status
                    c = s.counters if s else {}
                    print(f"[watch] scan {w.mirror.scan_id or '-'} seq {w.mirror.seq} "
                          f"filled {c.get('filled', 0)}/{c.get('width', 0) * c.get('height', 0)} "
                          f"rate {(s.rates if s else {}).get('spectra_s', 0):.0f}/s", flush=True)
            if until_end and w.ended and w.ended != done_before \
                    and w.ended == w.mirror.scan_id:
                w.resync()  # the final state for certain, even if a preview was dropped
                break
        write_pngs(w.mirror, out)
        return w.mirror
    finally:
        w.close()
