"""The scanner's side of the daemon's sockets, for `edge replay` and any Python scanner.

A PUSH socket in a context of its own, so that closing it with a linger and then
terminating the context really delivers what is still queued before the process
exits (a context left to the interpreter's exit drops it: issue 11, item 1). Every
wait is bounded: connecting, each send (back-pressure is fine, a daemon that takes
nothing for `timeout_s` is not) and the delivery check.

Delivery is confirmed on the request channel (SPEC.md 4.5): after `scan_start`
the daemon's status must name the scan, scanning, or say why it refused it; after
the last message, the status must show the scan's pixels all accepted (the per-scan
counters) and, after `scan_end`, the scan closed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

from edge.security import ClientKeys, secure_client
from proto import wire

ACCEPTED = "scan_pixels_accepted"  # per-scan counters of status (SPEC.md 4.5)
REFUSED = "scan_pixels_refused"
LAST_SEQ = "scan_last_seq"


class LinkError(RuntimeError):
    """Delivery failed or could not be confirmed; str() is one line for the operator."""


def refusal(status: wire.Status | None, scan_id: str) -> str | None:
    """Why the daemon refused scan `scan_id`, if this status says it did (SPEC.md 4.5)."""
    if status is None or status.scan_id != scan_id:
        return None
    return status.refused or None


def accepted_pixels(status: wire.Status) -> int:
    """The status scan's accepted pixels: the per-scan counter, else the canvas fill."""
    c = status.counters
    return int(c.get(ACCEPTED, c.get("filled", 0)))


def describe(status: wire.Status | None) -> str:
    if status is None:
        return "no status"
    c = status.counters
    return (f"status: scan {status.scan_id or '-'} {status.state}, "
            f"{accepted_pixels(status)} pixels accepted, {c.get(REFUSED, 0)} refused, "
            f"last seq {c.get(LAST_SEQ, status.seq)}")


@dataclass
class Link:
    """A PUSH socket to the daemon's ingest, and (optionally) its request channel."""

    ingest: str
    requests: str | None = None
    keys: ClientKeys | None = None
    timeout_s: float = 10.0
    sndhwm: int = 1000

    def __post_init__(self) -> None:
        self.ctx = zmq.Context()
        self.push = secure_client(self.ctx.socket(zmq.PUSH), self.keys)
        self.push.setsockopt(zmq.SNDHWM, self.sndhwm)
        self.push.setsockopt(zmq.SNDTIMEO, int(self.timeout_s * 1000))
        self.push.setsockopt(zmq.LINGER, int(self.timeout_s * 1000))
        self._monitor = self.push.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        self.push.connect(self.ingest)
        self.sent = 0
        self.messages_before: int | None = None

    # ---- ingest ---------------------------------------------------------------------------
    def wait_connected(self) -> None:
        """Return once the daemon's ingest has accepted this connection (handshake done)."""
        deadline = time.monotonic() + self.timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not self._monitor.poll(int(left * 1000) + 1):
                break
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise LinkError(f"the daemon at {self.ingest} refused this client's key: "
                                f"ask for its public key to be added to the daemon's allow-list")
            raise LinkError(f"the daemon at {self.ingest} refused the connection (security "
                            f"mismatch?): give --curve-keys DIR when the daemon uses CURVE")
        raise LinkError(f"no daemon accepted a connection on {self.ingest} within "
                        f"{self.timeout_s:g} s: start one (`python -m edge serve`) or give "
                        f"the right --ingest")

    def send(self, message: wire.Message | bytes) -> None:
        buf = message if isinstance(message, bytes) else wire.encode(message)
        try:
            self.push.send(buf)
        except zmq.Again:
            raise LinkError(f"the daemon at {self.ingest} took nothing for {self.timeout_s:g} s "
                            f"after {self.sent} messages: is it still running?") from None
        self.sent += 1

    def close(self) -> None:
        """Deliver what is queued (up to `timeout_s`), then release the sockets."""
        self._monitor.close(0)
        self.push.close()  # its LINGER applies: queued messages go out first
        self.ctx.term()

    # ---- requests -------------------------------------------------------------------------
    def status(self, timeout_s: float | None = None) -> wire.Status:
        from edge.watch import request

        assert self.requests is not None
        t = self.timeout_s if timeout_s is None else timeout_s
        try:
            reply = request(self.requests, wire.SnapshotRequest(topics=()), t, self.keys)
        except TimeoutError:
            raise LinkError(f"no daemon answered on {self.requests} within {t:g} s: start "
                            f"one (`python -m edge serve`) or give the right --snapshot") from None
        if not isinstance(reply, wire.SnapshotReply) or reply.status is None:
            raise LinkError(f"the daemon at {self.requests} answered a status request with "
                            f"{type(reply).__name__}")
        return reply.status

    def baseline(self) -> None:
        """Before the first message: is the daemon there, and how many messages has it had."""
        if self.requests is not None:
            self.messages_before = int(self.status().counters.get("messages", 0))

    def _handled(self, status: wire.Status) -> bool:
        """Has the daemon handled (at least) as many messages as this link sent?"""
        before = self.messages_before or 0
        return int(status.counters.get("messages", 0)) >= before + self.sent

    def _poll(self, done, what: str, cap_s: float | None = None) -> wire.Status:
        """Poll the status until `done(status)` is true; give up when nothing has changed
        on the daemon for `timeout_s` (a slow daemon that still makes progress is waited
        for), or after `cap_s` in all (other senders keep the daemon's counters moving)."""
        t0 = changed = time.monotonic()
        seen = None
        while True:
            s = self.status()
            if done(s):
                return s
            key = (s.scan_id, s.state, s.counters.get("messages"), accepted_pixels(s))
            now = time.monotonic()
            if key != seen:
                seen, changed = key, now
            elif now - changed > self.timeout_s:
                raise LinkError(f"{what} not confirmed: nothing changed on the daemon for "
                                f"{self.timeout_s:g} s ({describe(s)})")
            if cap_s is not None and now - t0 > cap_s:
                raise LinkError(f"{what} not confirmed within {cap_s:g} s ({describe(s)})")
            time.sleep(0.02)

    def confirm_start(self, scan_id: str) -> None:
        """After scan_start: the daemon opened this scan, else LinkError with its reason."""
        if self.requests is None:
            return

        def done(s: wire.Status) -> bool:
            if reason := refusal(s, scan_id):
                raise LinkError(f"the daemon refused scan {scan_id}: {reason}")
            # scanning it, once our scan_start can have been handled (other senders may
            # move the message counter too: then a later status shows it)
            return self._handled(s) and s.scan_id == scan_id and s.state == "scanning"

        self._poll(done, f"the opening of scan {scan_id}", cap_s=max(30.0, 3 * self.timeout_s))

    def drain(self) -> None:
        """Before closing: wait (while the daemon makes progress) until it has taken as many
        messages as this link sent, so no linger can run out on a slow daemon's queue."""
        if self.requests is not None and self.sent:
            self._poll(self._handled, "delivery")

    def confirm_delivery(self, scan_id: str, pixels: int, ended: bool) -> str:
        """After the last message: every pixel accepted and (`ended`) the scan closed.
        Returns what was confirmed, in words; LinkError otherwise."""
        if self.requests is None:
            return "delivery not confirmed (give --snapshot to confirm)"

        def done(s: wire.Status) -> bool:
            if not self._handled(s):
                return False
            if s.scan_id != scan_id:
                raise LinkError(f"scan {scan_id} was closed before its end was confirmed: "
                                f"the daemon is on scan {s.scan_id or '-'} now")
            if reason := refusal(s, scan_id):
                raise LinkError(f"the daemon refused scan {scan_id}: {reason}")
            if ended and s.state != "idle":
                return False
            got, refused = accepted_pixels(s), int(s.counters.get(REFUSED, 0))
            if got + refused < pixels:
                return False  # a flush may still be due
            if got != pixels or refused:
                raise LinkError(f"scan {scan_id}: the daemon accepted {got} of {pixels} "
                                f"pixels sent, refused {refused} ({describe(s)}; see "
                                f"`python -m edge status`)")
            return True

        s = self._poll(done, f"delivery of scan {scan_id}")
        closed = f", scan closed ({s.detail.get('scan', {}).get('end_status') or 'ended'})"
        return f"confirmed: {accepted_pixels(s)} pixels accepted{closed if ended else ''}"
