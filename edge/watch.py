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
from edge.marks import Marks
from edge.marks import line as marks_line
from edge.security import ClientKeys, secure_client
from edge.tiles import fetch_snapshot
from proto import wire


class WatchError(RuntimeError):
    """The scan watched for was refused or never ended; str() is one line for people."""


class Mirror:
    """A client-side copy of the daemon's canvases, built from previews."""

    def __init__(self) -> None:
        self.scan_id = ""
        self.end_status = ""  # how the followed scan ended ("" while it runs)
        self.seq = -1
        self.rgb: np.ndarray | None = None
        self.elements: np.ndarray | None = None
        self.trust: np.ndarray | None = None
        self.names: tuple[str, ...] = ()
        self.status: wire.Status | None = None
        self.applied = 0
        self.marks = Marks()  # foreign topics, out-of-domain masks, trust threshold
        self.size: tuple[int, int] | None = None  # (height, width) of scan_id's canvas
        self.pixel_size_um: float | None = None  # scan_start's: the PNGs' scale bar

    def begin(self, start: wire.ScanStart | None) -> None:
        """A snapshot's scan: its canvas size, so that tiles can be drawn (SPEC.md 4.4)."""
        if start is None:
            return
        if (start.scan_id, (start.height, start.width)) != (self.scan_id, self.size):
            self.scan_id, self.rgb, self.elements, self.trust = start.scan_id, None, None, None
            self.marks = Marks()
        self.size = (start.height, start.width)
        self.pixel_size_um = start.pixel_size_um

    def apply(self, p: wire.Preview) -> None:
        x0, y0, w, h = p.region
        if p.scan_id != self.scan_id:
            if not p.full:
                return  # a region of a scan we have no frame of: wait for a full one
            self.scan_id, self.rgb, self.elements, self.trust = p.scan_id, None, None, None
            self.marks = Marks()
        data = np.asarray(p.data)
        if p.full:
            self.size = (h, w)
            setattr(self, p.topic, data.copy())
        else:
            current = getattr(self, p.topic)
            if current is None or (p.topic == "elements" and len(current) != len(data)):
                if self.size is None:
                    return  # a tile of a canvas whose size we do not know: wait for a snapshot
                current = np.zeros(_shape(p.topic, self.size, len(data)), dtype=data.dtype)
                setattr(self, p.topic, current)
            if p.topic == "elements":
                current[:, y0:y0 + h, x0:x0 + w] = data
            else:
                current[y0:y0 + h, x0:x0 + w] = data
        if p.topic == "elements":
            self.names = tuple(p.names)
        self.seq = max(self.seq, p.seq)
        self.applied += 1
        self.marks.apply(p, self.size)


class Watcher:
    """Subscriber + snapshot client; `poll()` applies whatever arrived."""

    def __init__(self, previews: str, snapshot: str, timeout_s: float = 10.0,
                 keys: ClientKeys | None = None) -> None:
        self.ctx = zmq.Context.instance()
        self.keys = keys
        self.sub = secure_client(self.ctx.socket(zmq.SUB), keys)
        self.sub.setsockopt(zmq.RCVHWM, 10_000)
        self.sub.setsockopt(zmq.LINGER, 0)
        for topic in wire.PUB_TOPICS:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.sub.connect(previews)
        self.snapshot_endpoint = snapshot
        self.mirror = Mirror()
        self.snapshot_seq = -1
        self.ended: str | None = None  # the scan the latest status says has ended
        # the scan followed (None: waiting for one to start), whether it has ended, and the
        # last scan the daemon refused while we waited (its id, the reason)
        self.target: str | None = None
        self.finished = False
        self.strict = False  # True: apply only the followed scan's frames (edge watch)
        self.refused: tuple[str, str] | None = None
        self.refusals_before = 0  # scan_starts refused before we joined: not ours to report
        self.timeout_s = timeout_s
        time.sleep(0.2)  # let the subscription reach the publisher before the snapshot

    def request(self, message, timeout_s: float | None = None):
        return request(self.snapshot_endpoint, message, timeout_s or self.timeout_s, self.keys)

    def resync(self) -> wire.SnapshotReply:
        reply, frames = fetch_snapshot(self.request)  # every part of it (SPEC.md 4.7)
        if self.strict and self.target is not None and reply.scan_id != self.target:
            return reply  # the daemon is on another scan: never mix it into this one
        self.snapshot_seq = reply.seq
        self.mirror.begin(reply.scan_start)
        for frame in frames:
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
                self.follow(msg)
                continue
            if self.strict and msg.scan_id != self.target:
                continue  # waiting for a scan, or another scan's frames: not the one followed
            if msg.scan_id != self.mirror.scan_id and not msg.full:
                self.resync()  # SPEC.md 5: a new scan's tiles need its size; the snapshot,
                continue  # taken after this tile was sent, holds it
            if msg.seq <= self.snapshot_seq and msg.scan_id == self.mirror.scan_id:
                continue  # already in the snapshot
            self.mirror.apply(msg)
        return n

    def follow(self, s: wire.Status) -> None:
        """Track the followed scan through statuses, in the order they were sent: a
        scanning status starts one (when none is followed), an idle one of its id, or any
        status of another scan (it was abandoned for that one), ends it."""
        if self.target is None:
            if s.state == "scanning":
                self.target, self.finished = s.scan_id, False
                self.resync()  # SPEC.md 5: a new scan began: its snapshot
            elif (reason := refused_reason(s)) and \
                    s.errors.get("scan_refused", 0) > self.refusals_before:
                self.refused = (s.scan_id, reason)
                self.refusals_before = s.errors.get("scan_refused", 0)
        elif not self.finished and (s.scan_id != self.target or s.state == "idle"):
            self.finished = True
            scan = s.detail.get("scan") or {}
            self.mirror.end_status = (str(scan.get("end_status") or "ended")
                                      if s.scan_id == self.target else "abort")

    def close(self) -> None:
        self.sub.close(0)


def ended_scan(status: wire.Status) -> str | None:
    """The scan a status says has ended, else None (SPEC.md 4.5: `state` "idle" with a
    `scan_id`). Every status while idle says so, so losing one to the PUB high-water mark
    loses nothing; a "scanning" one clears it, so a re-run of the same id is followed."""
    return status.scan_id if status.state == "idle" and status.scan_id else None


def refused_reason(status: wire.Status) -> str:
    """Why the daemon refused scan `status.scan_id`, if this status says it did (SPEC 4.5)."""
    return status.refused


def dealer(endpoint: str, keys: ClientKeys | None, timeout_s: float) -> zmq.Socket:
    """A DEALER on the daemon's ROUTER whose sends give up after `timeout_s`: ZeroMQ drops
    the pipe of a connection whose handshake failed (a CURVE daemon, a plain client) until
    it reconnects, and a send meanwhile would block with no bound."""
    sock = secure_client(zmq.Context.instance().socket(zmq.DEALER), keys)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout_s * 1000)))
    sock.connect(endpoint)
    return sock


def request(endpoint: str, message, timeout_s: float = 10.0, keys: ClientKeys | None = None):
    """One request to the daemon's ROUTER (snapshot, status, control), one reply;
    `keys`: a CURVE client (edge.security) of a daemon that requires one."""
    sock = dealer(endpoint, keys, timeout_s)
    try:
        deadline = time.monotonic() + timeout_s
        sock.send_multipart([b"", wire.encode(message)])
        if sock.poll(int(max(0.0, deadline - time.monotonic()) * 1000)):
            return wire.decode(sock.recv_multipart()[-1], max_bytes=wire.MAX_MESSAGE_BYTES)
    except zmq.Again:
        pass
    finally:
        sock.close(0)
    raise no_reply(endpoint, timeout_s)


def no_reply(endpoint: str, timeout_s: float) -> TimeoutError:
    """The one line an operator reads when a request had no answer."""
    return TimeoutError(f"no reply from the daemon at {endpoint} in {timeout_s:g} s: is it "
                        f"running there, and does it want --curve-keys?")


def _shape(topic: str, size: tuple[int, int], planes: int) -> tuple[int, ...]:
    """A blank canvas of a topic (SPEC.md 4.4 layouts), for tiles to be drawn on."""
    h, w = size
    return {"rgb": (h, w, 3), "elements": (planes, h, w), "trust": (h, w)}[topic]


def write_pngs(mirror: Mirror, folder: str | Path, prefix: str = "") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if mirror.rgb is not None:
        written.append(png.write_png(folder / f"{prefix}rgb.png", png.upscale(mirror.rgb, 384)))
    if mirror.elements is not None:
        names = mirror.names or tuple(str(i) for i in range(len(mirror.elements)))
        panels = [png.panel(m, n, units="c/s", pixel_size_um=mirror.pixel_size_um)
                  for n, m in zip(names, mirror.elements, strict=False)]
        written.append(png.write_png(folder / f"{prefix}elements.png", png.grid(panels)))
    if mirror.trust is not None:
        written.append(png.write_png(
            folder / f"{prefix}trust.png",
            png.panel(mirror.trust, "trust", 384, pixel_size_um=mirror.pixel_size_um)))
    return written + mirror.marks.write(folder, prefix, mirror.trust)


def watch(
    previews: str, snapshot: str, out: str | Path, *, every_s: float = 3.0,
    until_end: bool = True, timeout_s: float = 600.0, quiet: bool = False,
    keys: ClientKeys | None = None,
) -> Mirror:
    """Follow a scan: the one open when we join, else the next to start. Write its PNGs
    every `every_s` and when it ends, and only its own (never a previous or a later
    scan's). Raises WatchError when the scan waited for is refused, or none ends in
    `timeout_s`; `until_end=False` (--follow) goes on to the next scans until the timeout."""
    w = Watcher(previews, snapshot, timeout_s=min(10.0, timeout_s), keys=keys)
    w.strict = True
    try:
        try:
            snap = w.resync()
        except TimeoutError:
            raise WatchError(f"no daemon answered on {snapshot} within {w.timeout_s:g} s: "
                             f"start one (`python -m edge serve`) or give the right "
                             f"--snapshot") from None
        if snap.status and snap.status.state == "scanning":
            w.target = snap.scan_id  # follow the open scan; a scan already over is not it
        w.refusals_before = snap.status.errors.get("scan_refused", 0) if snap.status else 0
        t_end = time.monotonic() + timeout_s
        last_png = 0.0
        while time.monotonic() < t_end:
            w.poll(200)
            if w.refused and w.target is None:
                if until_end:
                    raise WatchError(f"scan {w.refused[0]} was refused by the daemon: "
                                     f"{w.refused[1]} (no PNGs written)")
                if not quiet:
                    print(f"[watch] scan {w.refused[0]} refused: {w.refused[1]}", flush=True)
                w.refused = None
            now = time.monotonic()
            ours = w.target is not None and w.mirror.scan_id == w.target
            if ours and now - last_png >= every_s:
                write_pngs(w.mirror, out)
                last_png = now
                if not quiet:
                    s = w.mirror.status
                    c = s.counters if s else {}
                    print(f"[watch] scan {w.mirror.scan_id or '-'} seq {w.mirror.seq} "
                          f"filled {c.get('filled', 0)}/{c.get('width', 0) * c.get('height', 0)} "
                          f"rate {(s.rates if s else {}).get('spectra_s', 0):.0f}/s"
                          f"{marks_line(s)}", flush=True)
            if w.target is not None and w.finished:
                w.resync()  # the final state for certain, if the daemon is still on this scan
                if w.mirror.scan_id == w.target:
                    write_pngs(w.mirror, out)
                if until_end:
                    return w.mirror
                if not quiet:
                    print(f"[watch] scan {w.target} ended ({w.mirror.end_status})", flush=True)
                w.target, w.finished = None, False
        if until_end:
            if w.target is not None and w.mirror.scan_id == w.target:
                write_pngs(w.mirror, out)
            waiting = f"scan {w.target} still open" if w.target else "no scan started"
            raise WatchError(f"no scan ended within {timeout_s:g} s ({waiting}; "
                             f"PNGs only of a scan that ran)")
        return w.mirror
    finally:
        w.close()
