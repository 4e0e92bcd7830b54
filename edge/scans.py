"""Scan boundaries and the scan's recording, mixed into the daemon: scan_start, scan_end,
closing a scan, recording a batch, and resuming the scan a killed daemon left open (its
canvas rebuilt from the recording).

The accounting rule (SPEC.md 4.5, "Which counter proves it"): a pixel counts as accepted
only once a flush has made it durable; when a write or flush fails, every pixel not yet
durable is refused (`record_error`), the recording is closed `fail`, and the scan's later
spectra are refused too, so the scanner learns it from the scan's counters.

Uses the daemon's state (`cfg`, `stats`, `sessions`, `publisher`, `scan`, `finished`, `seq`)
and its `publish_status` / `load_models`; the class only groups this job's methods.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from edge.canvas import memory_refusal
from edge.config import Config
from edge.inference import element_planes
from edge.maps import write_final_maps
from edge.publisher import Publisher
from edge.recorder import Recorder
from edge.scan import Rejected, ScanState, check_start, scan_fields
from edge.status import Stats
from proto import wire
from proto.checks import uninferable
from proto.dataset import open_dataset
from proto.messages import NOT_INFERRED

log = logging.getLogger("edge.daemon")


class ScanLifecycle:
    cfg: Config
    stats: Stats
    publisher: Publisher
    recordings: Path
    sessions: dict
    small_sessions: dict
    models_error: str
    reload_pending: bool
    scan: ScanState | None
    finished: ScanState | None
    refused_id: str | None
    seq: int
    not_inferred: Counter
    burst_sent: bool

    def resume_open_scan(self) -> None:
        """Reopen the recording of a scan a killed daemon left open, and rebuild its canvas.

        The file's last durable seq and pixel count come back with it, so the scanner's
        next seq shows the messages lost in flight (`seq_missing`). A recording that
        cannot be resumed is closed `abort`, so that it opens as a plain HDF5 file."""
        sidecars = Recorder.open_scans(self.recordings)
        if not sidecars:
            return
        newest = max(sidecars, key=lambda p: p.stat().st_mtime)
        for sidecar in sidecars:
            if sidecar is not newest:
                self._close_unresumed(sidecar, "a newer open scan was resumed")
        try:
            info = json.loads(newest.read_text())
            start = wire.ScanStart(**info["scan"])
            grid, reason = check_start(start, self.sessions, self.cfg.allow_foreign)
            if grid is not None and (big := memory_refusal(
                    start.height, start.width, element_planes(self.sessions),
                    self.cfg.max_canvas_bytes)):
                grid, reason = None, big
            if grid is None:
                raise RuntimeError(f"models cannot serve it: {reason}")
            dtype = np.dtype(start.counts_dtype).name
            state = ScanState.open(start, grid, self.sessions, self.cfg.max_batch, None, dtype,
                                   small=self.small_sessions)
            # rebuild the canvas from the file first, then reopen it for writing
            self._replay_recording(state, newest.parent / info["path"])
            state.recorder = Recorder.resume(
                newest, self.cfg.flush_every_s, self.cfg.flush_pixels)
            state.last_seq = state.recorder.last_seq
            state.recorded = state.recorder.writer.pixels_recorded
            self.stats.accepted += state.recorded
            self.scan = state
            log.info("resumed scan %s from %s: %d pixels recorded, last seq %d",
                     start.scan_id, state.recorder.path, state.recorded, state.last_seq)
        except Exception as e:
            log.error("%s: could not resume: %s", newest, e)
            self.stats.last_error = f"resume failed: {e}"
            self._close_unresumed(newest, f"could not resume: {e}")

    def _close_unresumed(self, sidecar: Path, why: str) -> None:
        try:
            Recorder.resume(sidecar, self.cfg.flush_every_s).close(
                "abort", {"closed_by": f"daemon restart: {why}"})
        except Exception as e:  # moved aside, so that no later start tries it again
            aside = sidecar.with_suffix(".unresumable")
            try:
                sidecar.replace(aside)
            except OSError as moved:
                aside = f"left in place ({moved})"
            log.error("%s: could not close an open scan (%s): sidecar %s", sidecar, e, aside)

    def _replay_recording(self, state: ScanState, path: Path) -> None:
        with open_dataset(path) as ds:
            acquired, live_all, real_all = np.asarray(ds.acquired), ds.live_time_s, ds.real_time_s
            rows = max(1, 4096 // max(1, ds.shape[1]))
            for y0 in range(0, ds.shape[0], rows):
                got = acquired[y0:y0 + rows]
                if not got.any():
                    continue
                yy, xx = np.nonzero(got)
                block = np.asarray(ds.counts[y0:y0 + rows])
                counts = block[yy, xx]
                live = live_all[y0:y0 + rows][yy, xx]
                marks = uninferable(counts, live, real_all[y0:y0 + rows][yy, xx])
                if marks.any():
                    self.count_not_inferred(state, marks[marks > 0])
                    ok = marks == 0
                    yy, xx, counts, live = yy[ok], xx[ok], counts[ok], live[ok]
                for held in state.for_inference(xx, yy + y0, counts, live):
                    self.infer(state, *held)

    def on_scan_start(self, msg) -> None:
        if self.scan is not None and self.scan.scan_id == msg.scan_id:
            # re-announced (e.g. the scanner reconnects after a daemon restart): goes on
            if _plain(scan_fields(msg)) != _plain(scan_fields(self.scan.start)):
                raise Rejected("scan_conflict", f"scan_start for the open scan {msg.scan_id!r} "
                               "with other settings: the open scan goes on")
            log.info("scan %s announced again: it goes on", msg.scan_id)
            return
        if self.scan is not None:
            log.warning("scan %s abandoned: %s starts", self.scan.scan_id, msg.scan_id)
            self.close_scan("abort", closed_by=f"daemon: scan {msg.scan_id} started")
        grid, reason = check_start(msg, self.sessions, self.cfg.allow_foreign)
        if grid is not None and (big := memory_refusal(
                msg.height, msg.width, element_planes(self.sessions), self.cfg.max_canvas_bytes,
                self.cfg.record)):
            grid, reason = None, big  # refused with its figures, before anything is allocated
        if grid is not None and self.cfg.record:
            dtype = np.dtype(msg.counts_dtype).name
            try:
                recorder = Recorder.create(
                    self.recordings, msg.scan_id, msg.height, msg.width, grid, dtype,
                    dict(getattr(msg, "instrument", {}) or {}), scan_fields(msg),
                    self.cfg.flush_every_s, self.cfg.compression, self.cfg.flush_pixels,
                )
            except Exception as e:  # disk full, folder gone: refused, not an internal error
                grid, reason = None, f"cannot create its recording: {type(e).__name__}: {e}"
        else:
            recorder = None
        if grid is None:
            if self.models_error and not self.sessions:
                reason = f"{reason} ({self.models_error})"
            self.refused_id = msg.scan_id
            self.stats.refused_scans[msg.scan_id] = reason
            self.stats.reject("scan_refused", 0, f"{msg.scan_id}: {reason}")
            log.warning("scan %s refused: %s", msg.scan_id, reason)
            self.publish_status(time.monotonic())  # status.refused: the scanner learns it now
            return
        dtype = np.dtype(msg.counts_dtype).name
        self.scan = ScanState.open(msg, grid, self.sessions, self.cfg.max_batch, recorder, dtype,
                                   small=self.small_sessions)
        self.refused_id = None
        log.info("scan %s accepted: %d x %d pixels, %d channels, %s", msg.scan_id, msg.width,
                 msg.height, msg.channels,
                 f"recording {recorder.path.name}" if recorder else "not recorded")
        now = time.monotonic()
        self.publisher.publish(self.scan.canvas, msg.scan_id, self.seq, now, force=True)
        self.burst_sent = True
        self.publish_status(now)

    def on_scan_end(self, msg) -> None:
        if self.scan is None or msg.scan_id != self.scan.scan_id:
            raise Rejected("unknown_scan", f"scan_end for {msg.scan_id!r}")
        self.close_scan(str(msg.status), int(msg.pixel_count), "scan_end")

    def close_scan(self, status: str, pixel_count: int | None = None,
                   closed_by: str = "") -> None:
        """Close the open scan: `status` and `pixel_count` from its scan_end (None: closed by
        the daemon); the recording is marked by `recording_status`, with the tally."""
        scan, self.scan = self.scan, None
        if scan is None:
            return
        for held in scan.release():  # pixels still waiting for the energy-axis check
            self.infer(scan, *held)
        if scan.recording:
            self.flush_due(scan, None)
        final = recording_status(scan, status, pixel_count)
        closed = False
        if scan.recording:
            end = scan.tally() | {"scan_end": status if pixel_count is not None else None,
                                  "pixel_count": pixel_count, "closed_by": closed_by}
            try:
                scan.recorder.close(final, end)
                scan.recording_status, closed = final, True
            except Exception as e:
                log.error("closing recording %s: %s", scan.recorder.path, e)
                self.stats.last_error = f"recording close failed: {e}"
        if final == "incomplete":
            self.stats.last_error = (
                f"scan {scan.scan_id} incomplete: pixel_count {pixel_count}, accepted "
                f"{scan.recorded}, refused {sum(scan.refused.values())}, "
                f"{scan.seq_missing} messages missing")
        log.info("scan %s closed (%s, recording %s): %d pixels accepted, %d refused, "
                 "%d not inferred, %d messages missing", scan.scan_id, status,
                 scan.recording_status or "off", scan.recorded, sum(scan.refused.values()),
                 sum(scan.not_inferred.values()), scan.seq_missing)
        self.finished = scan
        now = time.monotonic()
        self.publisher.publish(scan.canvas, scan.scan_id, self.seq, now, force=True)
        self.burst_sent = True
        scan.end_status = status  # every later status says how it ended, not only this one
        # the maps as data, in the closed recording (proto/predictions.py), once the last
        # previews are out: a 4096 x 4096 scan's 537 MB of maps hold the turn ~1 s
        if closed and (problem := write_final_maps(scan, final)):
            self.stats.last_error = problem
        self.publish_status(now)
        if self.reload_pending:
            self.reload_pending = False
            self.load_models()

    # ---- the scan's recording ----------------------------------------------------------------
    def record_batch(self, scan: ScanState, x, y, counts, live, real, marks, seq: int,
                     messages: int) -> bool:
        """The scanner's data first: on disk before inference. False when these pixels
        could not be recorded (then refused, `record_error`) and must not be used."""
        if scan.recorder is None:  # recording off: taken is accepted
            scan.recorded += len(x)
            self.stats.accepted += len(x)
            return True
        if scan.record_error:  # already failed (its spectra are refused on arrival)
            scan.refused["record_error"] += len(x)
            self.stats.reject("record_error", len(x), scan.record_error)
            return False
        try:
            scan.recorder.write(x, y, counts, live, real, marks, seq, messages)
        except Exception as e:
            self.recording_failed(scan, e)
            return False
        return self.flush_due(scan, time.monotonic())

    def flush_due(self, scan: ScanState, now: float | None) -> bool:
        """Flush when due (`now` None: at once) and count what became durable; on failure,
        refuse what is not durable and stop recording this scan. True if it went well."""
        try:
            if now is None:
                scan.recorder.flush()
            else:
                scan.recorder.tick(now)
        except Exception as e:
            self.recording_failed(scan, e)
            return False
        new = scan.recorder.take_recorded()
        scan.recorded += new
        self.stats.accepted += new
        return True

    def recording_failed(self, scan: ScanState, e: Exception) -> None:
        pixels, messages = scan.recorder.unflushed()
        scan.record_error = f"{type(e).__name__}: {e}"[:300]
        scan.refused["record_error"] += pixels
        if pixels:
            self.stats.reject("record_error", pixels, f"scan {scan.scan_id}: {scan.record_error}")
            self.stats.rejected["record_error"] += max(0, messages - 1)  # messages, not batches
        else:
            self.stats.last_error = f"record_error: scan {scan.scan_id}: {scan.record_error}"
        end = scan.tally() | {"closed_by": f"record_error: {scan.record_error}"}
        scan.recording_status = "fail" if scan.recorder.abandon("fail", end) else "recording"
        log.error("scan %s: recording failed (%s); %d pixels not on disk are refused, and so "
                  "will be the scan's further spectra", scan.scan_id, scan.record_error, pixels)

    def count_not_inferred(self, scan: ScanState, marks: np.ndarray) -> None:
        codes, counts = np.unique(marks, return_counts=True)
        for code, n in zip(codes.tolist(), counts.tolist(), strict=True):
            scan.not_inferred[NOT_INFERRED[code - 1]] += n
            self.not_inferred[NOT_INFERRED[code - 1]] += n


def recording_status(scan: ScanState, status: str, pixel_count: int | None) -> str:
    """The recording's final status (proto/DATASET.md): `fail` when recording failed; the
    scan_end's `abort`/`fail` as sent; `abort` when the daemon closed it (no scan_end);
    `success` only when every pixel the scanner counted was accepted, none refused and no
    message missing, else `incomplete`."""
    if scan.record_error:
        return "fail"
    if pixel_count is None or status != "success":
        return status
    complete = pixel_count == scan.recorded and not +scan.refused and not scan.seq_missing
    return "success" if complete else "incomplete"


def _plain(fields: dict) -> str:
    """Scan settings as JSON: a sidecar's (lists) and a message's (tuples) compare equal."""
    return json.dumps(fields, sort_keys=True, default=list)
