"""Issue 11, item 8: after kill -9 and a restart, the messages lost in flight show.

The recording keeps the last durable seq and pixel count at every flush
(DATASET.md "Live recordings"); the restarted daemon resumes from them, so the
scanner's next seq reveals exactly how many messages died with the daemon, and the
finished recording opens as a plain HDF5 file.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from edge.replay import connect
from proto import wire
from tests.edge_inproc import spectra, start_message
from tests.edge_support import Daemon, make_bundles

W = 10


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("crash_models"))


def pixels(push, first_seq: int, last_seq: int) -> None:
    """One pixel per message; pixel i (0-based) has seq i + 1."""
    for seq in range(first_seq, last_seq + 1):
        i = seq - 1
        push.send(wire.encode(spectra("crash", seq, [(i % W, i // W)])))


def test_item8_kill9_restart_shows_pixels_lost_in_flight(models, tmp_path):
    rec = tmp_path / "rec"
    # a flush every 21 pixels and none by time: what comes after pixel 21 stays in memory
    slow_flush = ("--flush-pixels", "21", "--flush-every-s", "60")
    d = Daemon(models, rec, *slow_flush, log=tmp_path / "log").start()
    try:
        push = connect(d.ingest)
        push.send(wire.encode(start_message("crash", height=3, width=W)))
        pixels(push, 1, 21)
        d.wait(lambda s: s.counters.get("scan_pixels_recorded") == 21, what="21 durable")
        pixels(push, 22, 26)
        s = d.wait(lambda s: s.seq == 26, what="5 more taken, not flushed")
        assert s.counters["scan_pixels_recorded"] == 21  # what a crash now would keep
        d.kill9()
        push.close(0)
    finally:
        d.stop()

    d = Daemon(models, rec, *slow_flush, log=tmp_path / "log2").start()
    try:
        s = d.status()
        assert s.state == "scanning" and s.scan_id == "crash"
        assert s.seq == 21 and s.counters["scan_pixels_recorded"] == 21
        push = connect(d.ingest)
        pixels(push, 27, 30)  # the scanner carries on, unaware of the crash
        push.send(wire.encode(wire.ScanEnd(scan_id="crash", status="success", pixel_count=30)))
        s = d.wait(lambda s: s.state == "idle", what="scan end")
        push.close()
    finally:
        d.stop()
    c = s.counters
    assert c["scan_seq_gaps"] == 1 and c["scan_seq_missing"] == 5  # 22..26 died in flight
    assert c["scan_pixels_recorded"] == 25 and s.seq == 30
    path = rec / "crash.h5"
    with h5py.File(path, "r") as f:  # plain HDF5, no SWMR: the open-for-write flag is gone
        assert f.attrs["status"] == "incomplete"
        end = json.loads(f.attrs["end"])
        got = f["acquired"][...]
    assert end["seq_missing"] == 5 and end["pixel_count"] == 30
    assert end["pixels_recorded"] == 25 and end["last_seq"] == 30
    lost = np.zeros(30, bool)
    lost[21:26] = True
    np.testing.assert_array_equal(got.reshape(-1), ~lost)
