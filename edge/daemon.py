"""The edge daemon's main loop: PULL -> validate -> record -> infer -> canvas -> PUB.

One thread, micro-batches: each turn drains whatever spectra have arrived (up to
`max_batch` pixels, waiting at most `max_wait_ms` for more), records them, runs
every model once on the whole batch and updates the canvases. At slow dwell a
batch is one pixel (low latency); at fast dwell it fills up (high throughput).
One thread: the models' work is in ONNX Runtime's own pool (`threads`); an
inference thread that overlaps the next batch's decoding and recording was
measured to gain nothing on two cores (the hand-offs of the GIL between the
Python-heavy ingest and the inference cost what the overlap saves).

Nothing a client sends can stop the loop: every message is handled inside a
guard that turns any failure into a counted, reported rejection.

Split by job: this module holds the sockets, the loop, ingest dispatch and the spectra
path; scan boundaries and resume are in `edge.scans`, requests, status and snapshot
replies in `edge.requests`.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import zmq

from edge.config import REQUEST_HWM, SUBSCRIPTION_MAX_BYTES, Config
from edge.inference import describe, load_models
from edge.publisher import Publisher
from edge.requests import RequestHandling
from edge.scan import Rejected, ScanState
from edge.scans import ScanLifecycle
from edge.security import Authenticator, check_exposure, hide_root, server_keys
from edge.status import Stats
from proto import wire
from proto.bundle import BundleError
from proto.checks import uninferable

log = logging.getLogger("edge.daemon")


class Daemon(ScanLifecycle, RequestHandling):
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.ctx = zmq.Context.instance()
        # who may connect (edge/security.py): CURVE on all three sockets when keys are given;
        # no endpoint beyond loopback without it unless the operator said --insecure
        keys = server_keys(cfg.curve_keys, cfg.curve_server_key, cfg.curve_clients)
        check_exposure((cfg.ingest, cfg.previews, cfg.snapshot), keys is not None, cfg.insecure)
        self.auth = Authenticator(self.ctx, keys) if keys else None  # its thread is a daemon
        self.models_root = cfg.models  # reload_models takes folders inside it only
        self.pull = self._secure(self.ctx.socket(zmq.PULL))
        # ZeroMQ drops a peer whose frame is over the limit before buffering it, and holds at
        # most ingest_hwm messages per peer: ingest_hwm x max_frame_bytes <= the budget
        self.pull.setsockopt(zmq.MAXMSGSIZE, cfg.max_frame_bytes)
        self.pull.setsockopt(zmq.RCVHWM, cfg.ingest_hwm)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(cfg.ingest)
        self.pub = self._secure(self.ctx.socket(zmq.PUB))
        self.pub.setsockopt(zmq.SNDHWM, cfg.preview_hwm)  # x max_preview_bytes <= the budget
        self.pub.setsockopt(zmq.MAXMSGSIZE, SUBSCRIPTION_MAX_BYTES)  # it receives only these
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(cfg.previews)
        self.router = self._secure(self.ctx.socket(zmq.ROUTER))
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, cfg.request_max_bytes)
        self.router.setsockopt(zmq.RCVHWM, REQUEST_HWM)
        self.router.bind(cfg.snapshot)
        self.publisher = Publisher(self.pub, cfg.rate_hz, cfg.full_every_s,
                                   cfg.max_preview_bytes, cfg.max_reply_bytes)
        self.stats = Stats()
        self.recordings = Path(cfg.recordings)
        self.sessions: dict = {}
        self.small_sessions: dict = {}
        self.models_error = ""
        self.last_reload = ""
        self.reload_pending = False
        self._next_models: str | None = None  # a control message may name another folder
        self.scan: ScanState | None = None
        self.finished: ScanState | None = None  # last closed scan, still served to snapshots
        self.refused_id: str | None = None
        self.not_inferred: Counter[str] = Counter()  # recorded, not inferred: pixels by reason
        self.request_errors: Counter[str] = Counter()  # refused requests, by reason
        self.last_request_error = ""
        self.stopping = False
        self._pending: list[tuple[float, object]] = []
        self._pending_pixels = 0
        # a scan boundary sent its forced frames' first burst this turn: the loop's publish
        # waits for the next turn (one burst a turn: a big canvas's tile is ~20-80 ms)
        self.burst_sent = False
        self.load_models(initial=True)
        if cfg.record:
            self.resume_open_scan()

    def _secure(self, sock: zmq.Socket) -> zmq.Socket:
        if self.auth is not None:
            self.auth.secure(sock)  # before bind: the socket is a CURVE server
        return sock

    # ---- models -------------------------------------------------------------------------
    def load_models(self, initial: bool = False) -> None:
        folder = self._next_models or self.cfg.models
        self._next_models = None
        try:
            sessions = load_models(folder, threads=self.cfg.threads)
            small = load_models(folder, threads=1) if self.cfg.threads > 1 else sessions
        except (BundleError, OSError, ValueError) as e:  # replies name no path (security.py)
            self.last_reload = hide_root(f"refused: {e}", self.models_root)
            if initial:
                self.models_error = hide_root(str(e), self.models_root)
            log.warning("models not loaded, keeping the old ones: %s", e)
            return
        except Exception as e:  # ORT refusing a graph is as much a bad bundle as a bad hash
            self.last_reload = hide_root(f"refused: {type(e).__name__}: {e}", self.models_root)
            log.warning("models not loaded, keeping the old ones: %s", e)
            return
        self.sessions, self.small_sessions, self.models_error = sessions, small, ""
        self.cfg.models = str(folder)
        self.last_reload = hide_root(
            f"ok {time.strftime('%H:%M:%S')}: {sorted(sessions)} from {folder}", self.models_root)
        log.info("models loaded: %s", describe(sessions))

    def request_reload(self) -> None:
        self.reload_pending = True
        if self.scan is None:
            self.reload_pending = False
            self.load_models()

    @property
    def seq(self) -> int:
        """The last spectra.seq handled of the current (or last) scan: SPEC.md 4.4/4.5 `seq`
        on status, previews and snapshots (every emission comes after `process_pending`)."""
        scan = self.scan or self.finished
        return max(0, scan.last_seq) if scan is not None else 0

    # ---- spectra ------------------------------------------------------------------------
    def on_spectra(self, msg, t_recv: float) -> None:
        n = len(msg.x)
        if self.scan is None or msg.scan_id != self.scan.scan_id:
            refused = msg.scan_id in self.stats.refused_scans  # bounded: the latest refusals
            reason = "refused_scan" if refused else "unknown_scan"
            raise Rejected(reason, f"spectra for scan {msg.scan_id!r}", n)
        self.scan.check_spectra(msg)
        self._pending.append((t_recv, msg))
        self._pending_pixels += n

    def process_pending(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_pixels = self._pending, [], 0
        scan = self.scan
        if scan is None:
            return
        msgs = [m for _, m in batch]
        x, y, counts, live, real = gather(msgs)
        # well-formed pixels are recorded whatever their numbers; those the models cannot
        # take (SPEC.md 4.2: live time <= 0, real < live, impossible rate) are marked, skipped
        marks = uninferable(counts, live, real)
        if not self.record_batch(scan, x, y, counts, live, real, marks,
                                 max(m.seq for m in msgs), len(msgs)):
            return  # refused (record_error): nothing of it is used
        ok = marks == 0
        if not ok.all():
            self.count_not_inferred(scan, marks[~ok])
            x, y, counts, live = x[ok], y[ok], counts[ok], live[ok]
        for ready in scan.for_inference(x, y, counts, live):
            self.infer(scan, *ready)
        done = time.monotonic()
        self.stats.batches += 1
        received = np.fromiter((t for t, _ in batch), dtype=np.float64, count=len(batch))
        self.stats.latencies((done - received) * 1e3)

    def infer(self, scan: ScanState, x, y, counts, live) -> None:
        """Run the models on recorded pixels and draw them (a failure is counted)."""
        if not len(x):
            return
        cpu0 = time.process_time()
        try:
            out, outside = scan.engine.run_checked(counts, live)
        except Exception as e:  # recorded anyway; the preview just misses these pixels
            scan.not_inferred["inference_error"] += len(x)
            self.not_inferred["inference_error"] += len(x)
            self.stats.last_error = f"inference_error: {e}"[:300]
            log.error("inference failed: %s", e)
            return
        finally:
            self.stats.models_cpu_s += time.process_time() - cpu0
        self.stats.repeated += scan.canvas.update(
            x, y, out.get("rgb"), out.get("elements"), out.get("trust"), outside)

    # ---- messages -----------------------------------------------------------------------
    def handle_ingest(self, frames: list[bytes], t_recv: float) -> None:
        self.stats.messages += 1
        try:
            if len(frames) != 1:
                raise Rejected("multipart", f"{len(frames)} frames; one msgpack map expected")
            buf = frames[0]
            if len(buf) > self.cfg.max_message_bytes:
                raise Rejected("too_large", f"{len(buf)} bytes > {self.cfg.max_message_bytes}")
            try:
                msg = wire.decode(buf, max_bytes=self.cfg.max_message_bytes)
            except wire.ProtocolError as e:
                raise Rejected(e.reason, f"{e.path}: {e}") from e
            if isinstance(msg, wire.Spectra):
                self.on_spectra(msg, t_recv)
                return
            self.process_pending()  # keep order: earlier spectra before a scan boundary
            if isinstance(msg, wire.ScanStart):
                self.on_scan_start(msg)
            elif isinstance(msg, wire.ScanEnd):
                self.on_scan_end(msg)
            elif isinstance(msg, wire.Control):
                self.on_control(msg)
            else:
                raise Rejected("unexpected_type", type(msg).__name__)
        except Rejected as r:
            self.stats.reject(r.reason, r.pixels, r.detail)
        except Exception as e:  # never die of a client's mistake
            log.exception("message handling failed")
            self.stats.reject("internal_error", 0, f"{type(e).__name__}: {e}")

    # ---- loop ---------------------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "_hup", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        self._hup = False
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        poller.register(self.router, zmq.POLLIN)
        wait_s = self.cfg.max_wait_ms / 1e3
        log.info("serving: ingest %s, previews %s, snapshot %s",
                 self.cfg.ingest, self.cfg.previews, self.cfg.snapshot)
        log.info("ingest: RCVHWM %d messages x frames of at most %d bytes (ZMQ_MAXMSGSIZE) "
                 "<= ingest_buffer_bytes %d per peer; messages over %d bytes counted too_large",
                 self.cfg.ingest_hwm, self.cfg.max_frame_bytes, self.cfg.ingest_buffer_bytes,
                 self.cfg.max_message_bytes)
        while not self.stopping:
            self.burst_sent = False
            events = dict(poller.poll(0 if self.publisher.pending else 50))
            if self.pull in events:
                self.receive(wait_s)
                self.guarded(self.process_pending)
            if self.router in events:
                self.handle_router()
            now = time.monotonic()
            self.stats.mark(now)
            if self._hup:
                self._hup = False
                self.request_reload()
            if self.scan is not None:
                if self.scan.recording:
                    self.flush_due(self.scan, now)
                if not self.burst_sent:
                    self.publisher.publish(self.scan.canvas, self.scan.scan_id, self.seq, now)
            elif self.publisher.pending and not self.burst_sent:  # a closed scan's last tiles
                self.publisher.drain(self.seq)
            if self.publisher.status_due(now, self.cfg.status_every_s):
                self.publish_status(now)
        self.shutdown()

    def receive(self, wait_s: float) -> None:
        """Take messages until a batch is full or none came for `wait_s` after the first;
        at most max_batch messages a turn, so a flood of pixel-less messages (scan_starts)
        cannot keep the loop from requests, publishing and flushes."""
        deadline = time.monotonic() + wait_s
        for _ in range(self.cfg.max_batch):
            if self._pending_pixels >= self.cfg.max_batch:
                break
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                left = deadline - time.monotonic()
                if left <= 0 or not self._pending or not self.pull.poll(left * 1e3):
                    break
                continue
            self.handle_ingest(frames, time.monotonic())
        self.stats.queue_depth = self._pending_pixels

    def guarded(self, step) -> None:
        try:
            step()
        except Exception as e:  # never die of one bad batch
            log.exception("batch failed")
            self.stats.reject("internal_error", 0, f"{type(e).__name__}: {e}")

    def shutdown(self) -> None:
        self.process_pending()
        if self.scan is not None and self.scan.recording:
            # flushed and left open (sidecar kept): a restarted daemon resumes this scan
            try:
                self.scan.recorder.flush()
                self.scan.recorder.writer.close("abort")
            except Exception as e:
                log.error("closing recording on shutdown: %s", e)
        for s in (self.pull, self.pub, self.router):
            s.close(0)
        if self.auth is not None:
            self.auth.stop()


def gather(msgs: list) -> tuple[np.ndarray, ...]:
    """x, y (intp), counts, live and real time of decoded spectra messages, concatenated."""
    if len(msgs) == 1:
        m = msgs[0]
        x, y, counts, live, real = m.x, m.y, m.counts, m.live_time_s, m.real_time_s
    else:
        x = np.concatenate([m.x for m in msgs])
        y = np.concatenate([m.y for m in msgs])
        counts = np.concatenate([m.counts for m in msgs])
        live = np.concatenate([m.live_time_s for m in msgs])
        real = np.concatenate([m.real_time_s for m in msgs])
    return x.astype(np.intp, copy=False), y.astype(np.intp, copy=False), counts, live, real
