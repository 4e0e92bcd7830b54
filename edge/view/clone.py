"""The viewer's link to the daemon: the Clone pattern of SPEC.md section 5, in a thread.

Subscribe first, then ask for a snapshot (all its parts), then apply previews of the same
scan whose seq is above the snapshot's. A new snapshot is taken when:
- a preview names another scan (a new scan began), or a status says another scan is
  being scanned, or that the scan it said was idle is being scanned again (a re-run of the
  same id: its seq starts again);
- a preview of the scan has a lower seq than the last one applied (a re-run), or does
  not fit the canvas;
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
from dataclasses import replace

import zmq

from edge.security import ClientKeys, secure_client
from edge.view.state import ViewState
from edge.watch import dealer, no_reply, request
from proto import wire

log = logging.getLogger("edge.view")

# The SUB queue holds at most SUB_HWM messages (beyond, ZeroMQ drops: SPEC 1); a drain that
# finds that many means we were at the mark and may have lost previews: resync.
SUB_HWM = 200
BACKLOG = SUB_HWM


class CloneClient(threading.Thread):
    def __init__(self, previews: str, snapshot: str, state: ViewState,
                 notify: Callable[..., None], *, timeout_s: float = 5.0, quiet_s: float = 5.0,
                 keys: ClientKeys | None = None) -> None:
        super().__init__(name="view-clone", daemon=True)
        self.previews, self.snapshot = previews, snapshot
        self.state, self.notify = state, notify
        self.timeout_s, self.quiet_s = timeout_s, quiet_s
        self.keys = keys
        self.snapshot_seq = -1
        self.applied_seq = -1  # the last preview applied since the snapshot (-1: none)
        self.resyncs = 0
        self.bad_messages = 0
        self.link_ok: bool | None = None
        self._stale: set[str] = set()  # scans a snapshot showed are over: their late previews
        self._ended: str | None = None  # the scan the last status on PUB said was idle
        self._sub: zmq.Socket | None = None
        self._held: list[wire.Preview | wire.Status] = []  # came while a snapshot loaded
        self._zero_scans: set[str] = set()  # scans whose first frames came meanwhile
        self._overflow = False
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def ask(self, message: wire.Message, timeout_s: float | None = None) -> wire.Message:
        return request(self.snapshot, message, timeout_s or self.timeout_s, self.keys)

    # ---- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        sub = secure_client(zmq.Context.instance().socket(zmq.SUB), self.keys)
        sub.setsockopt(zmq.RCVHWM, SUB_HWM)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in wire.PUB_TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.previews)
        self._sub = sub
        try:
            self._loop(sub)
        finally:
            self._sub = None
            sub.close(0)

    def _loop(self, sub: zmq.Socket) -> None:
        need, heard = True, time.monotonic()
        while not self._halt.is_set():
            if need:
                if not self.resync():
                    self._halt.wait(1.0)
                    continue
                need, heard = self._after_load(), time.monotonic()
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
        msg = self._decode(frames)
        return False if msg is None else self.handle_msg(msg)

    def _decode(self, frames: list[bytes]) -> wire.Preview | wire.Status | None:
        try:
            return wire.from_pub_frames(frames)
        except wire.ProtocolError as e:
            self.bad_messages += 1
            log.warning("preview refused: %s", e)
            return None

    def handle_msg(self, msg: wire.Preview | wire.Status) -> bool:
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
        if msg.seq < self.applied_seq:
            return True  # seq went back: the scan id was started again (SPEC 5, step 5)
        if msg.seq <= self.snapshot_seq:
            return False  # already in the snapshot
        box = st.apply(msg)
        if box is None:
            return True
        self.applied_seq = msg.seq
        if box[2] and box[3]:
            self.notify("change", msg.topic, box)
        return False

    def resync(self) -> bool:
        """Take a snapshot (all its parts, SPEC 4.7) and load it; False (link down, told)
        when the daemon is silent or refuses."""
        try:
            for _ in range(5):  # a part from another scan: the scan changed, start again
                reply = self._load_snapshot()
                if reply is not None:
                    break
            else:
                raise TimeoutError("the scan kept changing while the snapshot was read")
        except (TimeoutError, wire.ProtocolError, zmq.ZMQError) as e:
            self._link(False, str(e))
            return False
        st = self.state
        with st.lock:
            st.seq = reply.seq
            st.topic_seq = dict.fromkeys(st.topic_seq, reply.seq)
            st.status = reply.status
            st.gen += 1  # pages that saw the state half loaded start over
        self.snapshot_seq = reply.seq
        self.applied_seq = -1
        self.resyncs += 1
        self._link(True, "")
        self.notify("reset")
        self.notify("status")
        return True

    def _load_snapshot(self) -> wire.SnapshotReply | None:
        """Part 0 into a reset state, then parts 1 .. parts-1 applied as they come (one
        part in memory at a time); None when a part names another scan or part count."""
        first = self._ask_part(0)
        st = self.state
        if st.scan_id and st.scan_id != first.scan_id:
            self._stale.add(st.scan_id)
        self._stale.discard(first.scan_id)
        st.reset(first.scan_id, first.scan_start)
        for frame in first.frames:
            st.apply(frame)
        first = replace(first, frames=())  # its bytes go: one part in memory at a time
        for part in range(1, first.parts):
            reply = self._ask_part(part)
            if (reply.scan_id, reply.parts) != (first.scan_id, first.parts):
                return None
            for frame in reply.frames:
                st.apply(frame)
        return first

    def _ask_part(self, part: int) -> wire.SnapshotReply:
        message = wire.SnapshotRequest(part=part) if part else wire.SnapshotRequest()
        reply = self.ask(message) if self._sub is None else self._ask_holding(message)
        if not isinstance(reply, wire.SnapshotReply):
            raise wire.ProtocolError("", "unexpected_reply",
                                     f"the daemon refused the snapshot request: {reply}")
        return reply

    # ---- while a snapshot loads ---------------------------------------------------------
    # Previews keep coming while a big snapshot is read (seconds for 4096 x 4096). They are
    # taken off the SUB socket as they come, not left in ZeroMQ's queue: a scan's first
    # frames (seq 0, all zeros; a whole canvas of tiles) are dropped at once, since any
    # snapshot holds them, noting their scan; the others are held, in order, for after.
    def _ask_holding(self, message: wire.Message) -> wire.Message:
        sock = dealer(self.snapshot, self.keys, self.timeout_s)
        try:
            sock.send_multipart([b"", wire.encode(message)])
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(self._sub, zmq.POLLIN)
            deadline = time.monotonic() + self.timeout_s
            while (left := deadline - time.monotonic()) > 0:
                events = dict(poller.poll(left * 1000))
                if self._sub in events:
                    self._hold()
                if sock in events:
                    frames = sock.recv_multipart()
                    return wire.decode(frames[-1], max_bytes=wire.MAX_MESSAGE_BYTES)
        except zmq.Again:
            pass  # the request was never taken (dealer's docstring)
        finally:
            sock.close(0)
        raise no_reply(self.snapshot, self.timeout_s)

    def _hold(self) -> None:
        while True:
            try:
                frames = self._sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            msg = self._decode(frames)
            if isinstance(msg, wire.Preview) and msg.seq == 0:
                self._zero_scans.add(msg.scan_id)
            elif msg is not None and len(self._held) < BACKLOG:
                self._held.append(msg)
            elif msg is not None:
                self._overflow = True

    def _after_load(self) -> bool:
        """Apply what was held during the load; True when another snapshot is needed (a
        scan began meanwhile, or too much came)."""
        held, self._held = self._held, []
        need = self._overflow or bool(self._zero_scans - {self.state.scan_id})
        self._overflow, self._zero_scans = False, set()
        for msg in held:
            need = self.handle_msg(msg) or need
        return need

    def _link(self, ok: bool, text: str) -> None:
        if ok != self.link_ok:
            self.link_ok = ok
            if not ok:
                log.warning("daemon link: %s", text)
            self.notify("link", ok, text)
