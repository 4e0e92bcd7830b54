"""An edge daemon inside the test process: messages handed to its ingest handler directly.

For the accounting tests (issue 11): deterministic (no sockets in the data path, no
timing), fast, and the recorder can be monkeypatched to fail like a full disk. The
sockets are bound on 127.0.0.1 with ports ZeroMQ picks, and closed by `close()`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.config import Config
from edge.daemon import Daemon
from proto import wire
from tests.edge_support import STREAM_GRID

CHANNELS = STREAM_GRID.channels


def start_message(scan_id: str, height: int = 3, width: int = 4, **extra) -> wire.ScanStart:
    return wire.ScanStart(
        scan_id=scan_id, width=width, height=height, channels=CHANNELS,
        offset_kev=STREAM_GRID.offset, gain_kev=STREAM_GRID.gain, dwell_s=0.01,
        beam_spot_um=50.0, pixel_size_um=100.0, counts_dtype="<u2", **extra)


def spectra(scan_id: str, seq: int, xy: list[tuple[int, int]], live=0.01, real=None,
            seed: int = 0) -> wire.Spectra:
    n = len(xy)
    rng = np.random.default_rng(seed + seq)
    live = np.broadcast_to(np.asarray(live, dtype=np.float32), (n,)).copy()
    real = live * np.float32(1.05) if real is None else np.broadcast_to(
        np.asarray(real, dtype=np.float32), (n,)).copy()
    return wire.Spectra(
        scan_id=scan_id, seq=seq,
        x=np.array([p[0] for p in xy], dtype=np.uint32),
        y=np.array([p[1] for p in xy], dtype=np.uint32),
        live_time_s=live, real_time_s=real,
        counts=rng.poisson(2.0, (n, CHANNELS)).astype(np.uint16))


class InProcess:
    """`Daemon` fed by `send()`; `status()` is its status message (what a client reads)."""

    def __init__(self, tmp: Path, models: Path, **settings) -> None:
        cfg = Config(ingest="tcp://127.0.0.1:*", previews="tcp://127.0.0.1:*",
                     snapshot="tcp://127.0.0.1:*", models=str(models),
                     recordings=str(tmp / "rec"), threads=1, **settings)
        self.recordings = tmp / "rec"
        self.daemon = Daemon(cfg)

    def send(self, *messages) -> None:
        """Each message as the ingest socket would hand it over, then the batch processed."""
        for m in messages:
            body = m if isinstance(m, bytes) else wire.encode(m)
            self.daemon.handle_ingest([body], time.monotonic())
        self.daemon.guarded(self.daemon.process_pending)

    def status(self) -> wire.Status:
        # through the wire: what a client reads is what the protocol allows
        return wire.decode(wire.encode(self.daemon.status_message()))

    def close(self) -> None:
        self.daemon.stopping = True
        self.daemon.shutdown()
