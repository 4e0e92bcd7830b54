"""The viewer's link to the daemon: the Clone pattern of SPEC.md section 5, in a thread.

Subscribe first, then ask for a snapshot, then apply previews of the same scan whose seq
is above the snapshot's. A new snapshot is taken when:
- a preview names another scan (a new scan began), or a status says another scan is
  being scanned, or that the scan it said was idle is being scanned again (a re-run of the
  same id: its seq starts again);
- a preview does not fit the canvas;
- one drain of the SUB socket found `BACKLOG` messages or more: the viewer fell behind
  and the daemon's PUB high-water mark may have dropped previews;
- nothing at all arrived for `quiet_s` (the daemon sends a status every second).
Between these, the daemon's periodic full frames heal any lost region.

Decoding happens here, off the web server's event loop; `notify(kind, *args)` must be
thread-safe (the server wraps `call_soon_threadsafe`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import zmq

from edge.view.state import ViewState
from proto import wire

log = logging.getLogger("edge.view")

BACKLOG = 1000  # messages in one drain: we were too slow, previews may have been dropped
SUB_HWM = 10_000


def request(endpoint: str, message: wire.Message, timeout_s: float,
            options: dict[int, object] | None = None) -> wire.Message:
    """One request on the daemon's request channel (a DEALER: empty delimiter, then the map)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    for opt, value in (options or {}).items():
        sock.setsockopt(opt, value)
    sock.connect(endpoint)
    try:
        sock.send_multipart([b"", wire.encode(message)])
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply from the daemon at {endpoint} in {timeout_s:g} s")
        frames = sock.recv_multipart()
        return wire.decode(frames[-1], max_bytes=wire.MAX_MESSAGE_BYTES)
    finally:
        sock.close(0)


class CloneClient(threading.Thread):
    def __init__(self, previews: str, snapshot: str, state: ViewState,
                 notify: Callable[..., None], *, timeout_s: float = 5.0, quiet_s: float = 5.0,
                 options: dict[int, object] | None = None) -> None:
        super().__init__(name="view-clone", daemon=True)
        self.previews, self.snapshot = previews, snapshot
        self.state, self.notify = state, notify
        self.timeout_s, self.quiet_s = timeout_s, quiet_s
        self.options = options or {}
        self.snapshot_seq = -1
        self.resyncs = 0
        self.bad_messages = 0
        self.link_ok: bool | None = None
        self._stale: set[str] = set()  # scans a snapshot showed are over: their late previews
        self._ended: str | None = None  # the scan the last status on PUB said was idle
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def ask(self, message: wire.Message, timeout_s: float | None = None) -> wire.Message:
        return request(self.snapshot, message, timeout_s or self.timeout_s, self.options)

    # ---- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, SUB_HWM)
        sub.setsockopt(zmq.LINGER, 0)
        for opt, value in self.options.items():
            sub.setsockopt(opt, value)
        for topic in wire.PUB_TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.previews)
        try:
            self._loop(sub)
        finally:
            sub.close(0)

    def _loop(self, sub: zmq.Socket) -> None:
        need, heard = True, time.monotonic()
        while not self._halt.is_set():
            if need:
                if not self.resync():
                    self._halt.wait(1.0)
                    continue
                need, heard = False, time.monotonic()
            n = 0
            if sub.poll(100):
                while n < BACKLOG:
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    n += 1
                    need = self.handle(frames) or need
                    if need:
                        break
            now = time.monotonic()
            if n:
                heard = now
            if n >= BACKLOG or now - heard > self.quiet_s:
                need = True

    def handle(self, frames: list[bytes]) -> bool:
        """Apply one PUB message; True when a new snapshot is needed."""
        try:
            msg = wire.from_pub_frames(frames)
        except wire.ProtocolError as e:
            self.bad_messages += 1
            log.warning("preview refused: %s", e)
            return False
        st = self.state
        if isinstance(msg, wire.Status):
            st.status = msg
            self.notify("status")
            # PUB order: "scanning" after "idle" of the same id is a re-run (SPEC 4.5), whose
            # seq starts again: the old snapshot's seq would hide its previews
            rerun = msg.state == "scanning" and msg.scan_id == self._ended
            other = msg.state == "scanning" and msg.scan_id != st.scan_id
            self._ended = msg.scan_id if msg.state == "idle" else None
            if other:
                self._stale.discard(msg.scan_id)
            return rerun or other
        if msg.scan_id != st.scan_id:
            return msg.scan_id not in self._stale
        if msg.seq <= self.snapshot_seq:
            return False  # already in the snapshot
        box = st.apply(msg)
        if box is None:
            return True
        self.notify("change", msg.topic, box)
        return False

    def resync(self) -> bool:
        """Take a snapshot and load it; False (link down, told) when the daemon is silent."""
        try:
            reply = self.ask(wire.SnapshotRequest())
        except (TimeoutError, wire.ProtocolError, zmq.ZMQError) as e:
            self._link(False, str(e))
            return False
        if not isinstance(reply, wire.SnapshotReply):
            self._link(False, f"the daemon refused the snapshot request: {reply}")
            return False
        st = self.state
        if st.scan_id and st.scan_id != reply.scan_id:
            self._stale.add(st.scan_id)
        self._stale.discard(reply.scan_id)
        st.reset(reply.scan_id, reply.scan_start)
        for frame in reply.frames:
            st.apply(frame)
        with st.lock:
            st.seq = reply.seq
            st.status = reply.status
        self.snapshot_seq = reply.seq
        self.resyncs += 1
        self._link(True, "")
        self.notify("reset")
        self.notify("status")
        return True

    def _link(self, ok: bool, text: str) -> None:
        if ok != self.link_ok:
            self.link_ok = ok
            if not ok:
                log.warning("daemon link: %s", text)
            self.notify("link", ok, text)
