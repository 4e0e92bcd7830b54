"""Send fuzzed messages to a running daemon and account for every one of them.

`Fuzzer` draws messages (tools.fuzz.generate), keeps only those whose outcome the
protocol fixes (tools.fuzz.predict), sends ingest on a PUSH socket and requests on a
DEALER (each tagged with an envelope frame, which the daemon echoes, so every reply is
matched to its request), and counts what the daemon must report. `check` compares that
with the daemon's status counters before and after.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import zmq

from proto import wire
from tools.fuzz.generate import ingest_message, request_message
from tools.fuzz.predict import ingest_reason, request_refused

PIXEL_ANSWERS = ("unknown_scan", "out_of_range", "not_recorded")  # SPEC.md 4.11


def status(endpoint: str, timeout_s: float = 10.0) -> wire.Status:
    """The daemon's status (a snapshot request without frames)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(wire.encode(wire.SnapshotRequest(topics=())))
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no status from {endpoint} in {timeout_s} s")
        return wire.decode(sock.recv(), max_bytes=wire.MAX_MESSAGE_BYTES).status
    finally:
        sock.close(0)


@dataclass
class Tally:
    sent: Counter = field(default_factory=Counter)  # by class
    reasons: Counter = field(default_factory=Counter)  # refusals the daemon must count
    skipped: int = 0  # drawn but not sent (they could have been accepted)


class Fuzzer:
    def __init__(self, ingest: str, requests: str, real_scan: str, max_bytes: int,
                 request_max_bytes: int = 1 << 20, too_large_bytes: int = 0) -> None:
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 1000)
        self.push.setsockopt(zmq.SNDTIMEO, 30_000)  # a daemon that takes nothing: an error
        self.push.connect(ingest)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(requests)
        self.real_scan, self.max_bytes = real_scan, max_bytes
        self.request_max_bytes, self.too_large_bytes = request_max_bytes, too_large_bytes
        self.ingest, self.requests = Tally(), Tally()
        self.replies: Counter = Counter()  # by reply type
        self.mismatches: list[str] = []  # replies that disagree with the prediction

    # ---- ingest ---------------------------------------------------------------------------
    def draw_ingest(self, rng: random.Random, cls: str) -> tuple[list[bytes], str] | None:
        frames = ingest_message(rng, cls, self.too_large_bytes)
        reason = ingest_reason(frames, self.real_scan, self.max_bytes)
        if reason is None:
            self.ingest.skipped += 1
        return None if reason is None else (frames, reason)

    def send_ingest(self, frames: list[bytes], cls: str, reason: str) -> None:
        self.push.send_multipart(frames)
        self.ingest.sent[cls] += 1
        self.ingest.reasons[reason] += 1

    def fuzz_ingest(self, rng: random.Random, n: int, classes: tuple[str, ...]) -> None:
        while sum(self.ingest.sent.values()) < n:
            cls = rng.choice(classes)
            if (drawn := self.draw_ingest(rng, cls)) is not None:
                self.send_ingest(drawn[0], cls, drawn[1])

    # ---- requests -------------------------------------------------------------------------
    def draw_request(self, rng: random.Random, cls: str) -> tuple[bytes, str] | None:
        body = request_message(rng, cls, self.real_scan)
        reason = request_refused(body, self.request_max_bytes)
        if reason is None:
            self.requests.skipped += 1
        return None if reason is None else (body, reason)

    def exchange(self, batch: list[tuple[bytes, str, str]], timeout_s: float = 30.0) -> None:
        """Send a batch of (body, class, expected reason) and match every reply to it."""
        pending: dict[bytes, tuple[str, str]] = {}
        for i, (body, cls, reason) in enumerate(batch):
            tag = i.to_bytes(4, "big")
            self.dealer.send_multipart([tag, body])
            pending[tag] = (cls, reason)
            self.requests.sent[cls] += 1
            self.requests.reasons[reason or "answered"] += 1
        while pending:
            if not self.dealer.poll(int(timeout_s * 1000)):
                self.mismatches.append(f"{len(pending)} requests got no reply in {timeout_s} s")
                return
            tag, out = self.dealer.recv_multipart()
            cls, reason = pending.pop(tag)
            self._judge(wire.decode(out, max_bytes=wire.MAX_MESSAGE_BYTES), cls, reason)

    def _judge(self, reply: wire.Message, cls: str, reason: str) -> None:
        self.replies[type(reply).__name__] += 1
        if isinstance(reply, wire.SnapshotReply):
            control = (reply.status.detail.get("control") if reply.status else None) or {}
            got = "" if control.get("ok", True) else str(control.get("reason"))
        elif isinstance(reply, wire.Error):  # a pixel request's errors are answers, not refusals
            got = "" if not reason and reply.reason in PIXEL_ANSWERS else reply.reason
        else:
            got = ""
        if got != reason and len(self.mismatches) < 20:
            self.mismatches.append(f"{cls}: expected {reason or 'answered'}, got "
                                   f"{type(reply).__name__} {got or 'answered'}")

    def fuzz_requests(self, rng: random.Random, n: int, classes: tuple[str, ...],
                      window: int = 32) -> None:
        while sum(self.requests.sent.values()) < n:
            batch = []
            while len(batch) < min(window, n - sum(self.requests.sent.values())):
                cls = rng.choice(classes)
                if (drawn := self.draw_request(rng, cls)) is not None:
                    batch.append((drawn[0], cls, drawn[1]))
            self.exchange(batch)

    def close(self) -> None:
        self.push.close(linger=30_000)  # everything sent reaches the daemon
        self.dealer.close(0)
        self.ctx.term()


def check(before: wire.Status, after: wire.Status, fuzz: Fuzzer, other_messages: int) -> dict:
    """The daemon's counters against what was sent: every ingest message counted, every
    fuzzed one refused with the predicted reason, every refused request counted."""
    def delta(key: str) -> int:
        return int(after.counters.get(key, 0)) - int(before.counters.get(key, 0))

    sent = sum(fuzz.ingest.sent.values())
    errors = Counter({k: v - before.errors.get(k, 0) for k, v in after.errors.items()})
    by_reason = {k: (fuzz.ingest.reasons[k], errors[k])
                 for k in set(fuzz.ingest.reasons) | {k for k, v in errors.items() if v}}
    refused = sum(v for k, v in fuzz.requests.reasons.items() if k != "answered")
    return {
        "ingest_sent": sent,
        "messages_counted": (sent + other_messages, delta("messages")),
        "refused_counted": (sent, delta("rejected_total")),
        "by_reason": by_reason,
        "requests_sent": sum(fuzz.requests.sent.values()),
        "replies": sum(fuzz.replies.values()),
        "requests_refused_counted": (refused, delta("rejected_requests")),
        "reply_mismatches": list(fuzz.mismatches),
        "ok": (delta("messages") == sent + other_messages and delta("rejected_total") == sent
               and all(a == b for a, b in by_reason.values())
               and sum(fuzz.replies.values()) == sum(fuzz.requests.sent.values())
               and delta("rejected_requests") == refused and not fuzz.mismatches),
    }
