"""What the daemon answers, mixed into it: ROUTER requests (snapshot, control), the
`status` message and the snapshot reply (SPEC.md 4.5-4.7).

Uses the daemon's state and its `process_pending` / `request_reload`; the class only
groups this job's methods.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import zmq

from edge import pixels
from edge.config import Config
from edge.inference import describe
from edge.instruments import trust_detail
from edge.publisher import Publisher
from edge.scan import Rejected, ScanState
from edge.security import inside_root
from edge.status import Stats
from proto import wire


class RequestHandling:
    cfg: Config
    router: zmq.Socket
    stats: Stats
    publisher: Publisher
    sessions: dict
    models_error: str
    last_reload: str
    reload_pending: bool
    _next_models: str | None
    models_root: str
    scan: ScanState | None
    finished: ScanState | None
    refused_id: str | None
    seq: int
    not_inferred: Counter
    request_errors: Counter  # refused requests by reason
    last_request_error: str

    def on_control(self, msg: wire.Control) -> dict:
        if msg.command == "reload_models":
            if msg.models:  # a folder inside the models root only: never an arbitrary path
                folder = inside_root(self.models_root, msg.models)
                if folder is None:  # the same answer whether or not such a path exists
                    raise Rejected("forbidden_path", "models: give the name of a folder "
                                   "inside the daemon's models folder")
                self._next_models = str(folder)
            self.request_reload()
            return {"ok": True, "pending": self.reload_pending, "models": self.last_reload}
        raise Rejected("unknown_command", msg.command)

    def handle_router(self) -> None:
        while True:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            ident, envelope, body = frames[0], frames[1:-1], frames[-1]
            try:
                msg = wire.decode(body, max_bytes=self.cfg.request_max_bytes)
                if isinstance(msg, wire.SnapshotRequest):
                    self.process_pending()
                    reply = self.snapshot(tuple(msg.topics), part=msg.part)
                elif isinstance(msg, wire.Control):
                    try:
                        result = self.on_control(msg)
                    except Rejected as r:
                        self.refuse_request(r.reason, r.detail)
                        result = {"ok": False, "reason": r.reason}
                    reply = self.snapshot((), control=result)
                elif isinstance(msg, wire.PixelRequest):  # a viewer's click: from the file
                    reply = pixels.answer(msg, self.scan, self.finished)
                else:
                    raise Rejected("unexpected_type", type(msg).__name__)
                out = wire.encode(reply)
            except Exception as e:
                reason = getattr(e, "reason", "malformed")
                self.refuse_request(reason, str(e))
                out = wire.encode(wire.Error(reason=reason, path=str(getattr(e, "path", "")),
                                             detail=str(e)[:500]))
            with contextlib.suppress(zmq.ZMQError):  # the client left: nothing to do
                self.router.send_multipart([ident, *envelope, out], flags=zmq.NOBLOCK)

    # ---- state out ----------------------------------------------------------------------
    def refuse_request(self, reason: str, detail: str) -> None:
        """A request answered with a refusal: counted apart from ingest (`errors` and
        `rejected_total` are the scanner's; `rejected_requests` the clients', SPEC.md 4.5)."""
        self.request_errors[reason] += 1
        self.last_request_error = f"{reason}: {detail}"[:300]

    def status_message(self, **extra) -> wire.Status:
        """The `status` message: typed fields for what clients act on (SPEC.md 4.5: `state`
        "idle" with a `scan_id` means that scan has ended), `detail` for people, with
        `extra` (a control request's outcome) added to it."""
        # the last scan_start was refused (SPEC.md 4.5): its id and why, no scan's counters
        refused = "" if self.scan or self.refused_id is None else (
            self.stats.refused_scans.get(self.refused_id) or "refused")
        scan = None if refused else self.scan or self.finished
        state = "scanning" if self.scan else "idle"
        counters = self.stats.counters() | {
            "rejected_requests": sum(self.request_errors.values()),
            "previews_sent": self.publisher.sent,
            "previews_failed": self.publisher.failed,
            "not_inferred": sum(self.not_inferred.values()),
        } | {f"previews_sent.{t}": n for t, n in self.publisher.sent_by_topic.items()}
        detail = self.stats.detail() | {
            "models": describe(self.sessions),
            "models_error": self.models_error,
            "last_reload": self.last_reload,
            "request_errors": dict(self.request_errors),
            "last_request_error": self.last_request_error,
            "reload_pending": self.reload_pending,
            "last_publish_failure": self.publisher.last_failure,
        }
        if scan is not None:
            counters |= {"filled": int(scan.canvas.filled), "width": int(scan.canvas.width),
                         "height": int(scan.canvas.height)} | scan.counters()
            detail["scan"] = {
                "scan_id": scan.scan_id,
                "width": scan.canvas.width,
                "height": scan.canvas.height,
                "filled": scan.canvas.filled,
                "repeated": scan.canvas.repeated,
                "seq_gaps": scan.seq_gaps,
                "recording": scan.recorder.path.name if scan.recorder else None,  # no path
                "active": scan is self.scan,
                "end_status": scan.end_status,
                "recording_status": scan.recording_status,
                "record_error": scan.record_error,
            } | trust_detail(scan)
        return wire.Status(
            scan_id=self.refused_id if refused else scan.scan_id if scan else "",
            seq=0 if refused else self.seq,
            state=state,
            counters=counters,
            rates=self.stats.rates(),
            latency_ms=self.stats.latency_ms(),
            errors=self.stats.errors(),
            detail=detail | extra,
            refused=refused,
            foreign=tuple(sorted(scan.canvas.foreign)) if scan else (),
            out_of_domain=scan.canvas.out_of_domain() if scan else {},
        )

    def publish_status(self, now: float) -> None:
        self.publisher.send("status", self.status_message())

    def snapshot(self, topics: tuple[str, ...], part: int = 0, **extra):
        """One part of the snapshot of these topics (SPEC.md 4.7: a big one takes several)."""
        scan = self.scan or self.finished
        frames, parts = [], 1
        if scan is not None:
            frames, parts = self.publisher.snapshot_part(
                scan.canvas, scan.scan_id, self.seq, topics, part)
        elif part:
            raise wire.ProtocolError("part", "bad_value", "no scan: the snapshot has part 0")
        return wire.SnapshotReply(
            scan_id=scan.scan_id if scan else "",
            seq=self.seq,
            scan_start=scan.start if scan else None,
            frames=tuple(frames),
            status=self.status_message(**extra),
            part=part,
            parts=parts,
        )
