"""Scan boundaries, mixed into the daemon: scan_start, scan_end, closing a scan, and
resuming the scan a killed daemon left open (its canvas rebuilt from the recording).

Uses the daemon's state (`cfg`, `stats`, `sessions`, `publisher`, `scan`, `finished`, `seq`)
and its `publish_status` / `load_models`; the class only groups this job's methods.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from edge.config import Config
from edge.maps import write_final_maps
from edge.publisher import Publisher
from edge.recorder import Recorder
from edge.scan import Rejected, ScanState, check_start, scan_fields
from edge.status import Stats
from proto import wire
from proto.dataset import open_dataset

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

    def resume_open_scan(self) -> None:
        """Reopen the recording of a scan a killed daemon left open, and rebuild its canvas."""
        sidecars = Recorder.open_scans(self.recordings)
        if not sidecars:
            return
        newest = max(sidecars, key=lambda p: p.stat().st_mtime)
        for sidecar in sidecars:
            if sidecar is newest:
                continue
            try:
                Recorder.resume(sidecar, self.cfg.flush_every_s).close("abort")
            except Exception as e:
                log.warning("%s: could not close an older open scan: %s", sidecar, e)
        try:
            info = json.loads(newest.read_text())
            start = wire.ScanStart(**info["scan"])
            grid, reason = check_start(start, self.sessions)
            if grid is None:
                raise RuntimeError(f"models cannot serve it: {reason}")
            dtype = np.dtype(start.counts_dtype).name
            state = ScanState.open(start, grid, self.sessions, self.cfg.max_batch, None, dtype,
                                   small=self.small_sessions)
            # rebuild the canvas from the file first, then reopen it for writing
            self._replay_recording(state, newest.parent / info["path"])
            state.recorder = Recorder.resume(
                newest, self.cfg.flush_every_s, self.cfg.flush_pixels)
            self.scan = state
            log.info("resumed scan %s from %s", start.scan_id, state.recorder.path)
        except Exception as e:
            log.error("%s: could not resume: %s", newest, e)
            self.stats.last_error = f"resume failed: {e}"

    def _replay_recording(self, state: ScanState, path: Path) -> None:
        with open_dataset(path) as ds:
            acquired, live_all = np.asarray(ds.acquired), ds.live_time_s
            rows = max(1, 4096 // max(1, ds.shape[1]))
            for y0 in range(0, ds.shape[0], rows):
                got = acquired[y0:y0 + rows]
                if not got.any():
                    continue
                yy, xx = np.nonzero(got)
                block = np.asarray(ds.counts[y0:y0 + rows])
                counts = block[yy, xx]
                live = live_all[y0:y0 + rows][yy, xx]
                out = state.engine.run(counts, live)
                state.canvas.update(
                    xx, yy + y0, out.get("rgb"), out.get("elements"), out.get("trust")
                )
        self.stats.accepted += state.canvas.filled
        self.seq += 1

    def on_scan_start(self, msg) -> None:
        if self.scan is not None and self.scan.scan_id == msg.scan_id:
            return  # re-announced (e.g. the scanner reconnects after a daemon restart)
        if self.scan is not None:
            log.warning("scan %s abandoned: %s starts", self.scan.scan_id, msg.scan_id)
            self.close_scan("abort")
        grid, reason = check_start(msg, self.sessions)
        if grid is None:
            if self.models_error and not self.sessions:
                reason = f"{reason} ({self.models_error})"
            self.refused_id = msg.scan_id
            self.stats.refused_scans[msg.scan_id] = reason
            self.stats.reject("scan_refused", 0, f"{msg.scan_id}: {reason}")
            log.warning("scan %s refused: %s", msg.scan_id, reason)
            return
        dtype = np.dtype(msg.counts_dtype).name
        recorder = None
        if self.cfg.record:
            recorder = Recorder.create(
                self.recordings, msg.scan_id, msg.height, msg.width, grid, dtype,
                dict(getattr(msg, "instrument", {}) or {}), scan_fields(msg),
                self.cfg.flush_every_s, self.cfg.compression, self.cfg.flush_pixels,
            )
        self.scan = ScanState.open(msg, grid, self.sessions, self.cfg.max_batch, recorder, dtype,
                                   small=self.small_sessions)
        self.refused_id = None
        self.seq += 1
        now = time.monotonic()
        self.publisher.publish(self.scan.canvas, msg.scan_id, self.seq, now, force=True)
        self.publish_status(now)

    def on_scan_end(self, msg) -> None:
        if self.scan is None or msg.scan_id != self.scan.scan_id:
            raise Rejected("unknown_scan", f"scan_end for {msg.scan_id!r}")
        if int(msg.pixel_count) != self.scan.canvas.filled:
            self.stats.last_error = (
                f"scan {msg.scan_id} ended with pixel_count {msg.pixel_count}, "
                f"canvas has {self.scan.canvas.filled}"
            )
        self.close_scan(str(msg.status))

    def close_scan(self, status: str) -> None:
        scan, self.scan = self.scan, None
        if scan is None:
            return
        if scan.recorder is not None:
            try:
                scan.recorder.close(status)
            except Exception as e:
                log.error("closing recording %s: %s", scan.recorder.path, e)
                self.stats.last_error = f"recording close failed: {e}"
            else:  # the maps as data, in the closed recording (proto/predictions.py)
                if problem := write_final_maps(scan, status):
                    self.stats.last_error = problem
        self.finished = scan
        self.seq += 1
        now = time.monotonic()
        self.publisher.publish(scan.canvas, scan.scan_id, self.seq, now, force=True)
        scan.end_status = status  # every later status says how it ended, not only this one
        self.publish_status(now)
        if self.reload_pending:
            self.reload_pending = False
            self.load_models()
