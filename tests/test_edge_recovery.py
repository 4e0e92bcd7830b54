"""kill -9 mid-scan and restart; model hot swap between scans."""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest

from edge.replay import connect, replay
from edge.watch import Watcher, request
from proto import wire
from proto.dataset import open_dataset
from tests.edge_support import STREAM_GRID, Daemon, make_bundles, make_scan, offline
from tests.test_edge_e2e import assert_canvases, assert_recording, follow_to_end

H, W = 6, 7


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge_recovery")
    models = make_bundles(root / "models")
    scan = make_scan(root / "scan.h5", H, W, seed=3)
    with open_dataset(scan) as ds:
        cube, live = ds.counts[...], ds.live_time_s
    return root, models, scan, cube, live, offline(models, cube, live, STREAM_GRID)


def test_kill9_mid_scan_then_resume(world, tmp_path):
    _, models, scan, cube, live, ref = world
    rec = tmp_path / "rec"
    d = Daemon(models, rec, log=tmp_path / "log").start()
    try:
        push = connect(d.ingest)
        replay(scan, push=push, rows=(0, 3), send_end=False, scan_id="crash")
        d.wait(lambda s: s.counters.get("filled", 0) == 3 * W, what="first half")
        time.sleep(0.6)  # > flush interval (0.2 s): the first half is durable
        d.kill9()
        push.close(0)
    finally:
        d.stop()
    path = rec / "crash.h5"
    with open_dataset(path) as ds:  # the recording of a killed daemon opens
        got = ds.acquired
        assert got[:3].all() and not got[3:].any()
        np.testing.assert_array_equal(ds.counts[:3], cube[:3])
        np.testing.assert_array_equal(ds.live_time_s[:3], live[:3])

    d = Daemon(models, rec, log=tmp_path / "log2").start()
    try:
        s = d.status()
        assert s.state == "scanning" and s.scan_id == "crash"
        assert s.counters["filled"] == 3 * W
        w = Watcher(d.previews, d.snapshot)
        try:
            w.resync()  # the restarted daemon serves the first half from the recording
            np.testing.assert_array_equal(w.mirror.rgb[:3], ref["rgb"][:3])
            np.testing.assert_allclose(w.mirror.elements[:, :3], ref["elements"][:, :3],
                                       rtol=1e-5, atol=1e-5)
            push = connect(d.ingest)
            replay(scan, push=push, rows=(3, H), scan_id="crash")  # the scanner carries on
            follow_to_end(w, "crash")
            push.close()
            assert_canvases(w.mirror, ref)
        finally:
            w.close()
        d.wait(lambda s: s.state == "idle", what="scan end")
    finally:
        d.stop()
    assert_recording(path, cube, live)
    with open_dataset(path) as ds:
        assert ds.status == "success"


def sha(status: wire.Status, kind: str) -> str:
    return status.detail["models"][kind]["sha256"]


def test_hot_swap_between_scans_refuses_bad_bundle(world, tmp_path):
    _, models, scan, *_ = world
    live_models = tmp_path / "models"
    shutil.copytree(models, live_models)
    d = Daemon(live_models, tmp_path / "rec", log=tmp_path / "log").start()
    try:
        before = d.status()
        # a corrupted graph: fails sha256 verification -> refused, old models kept
        onnx_file = live_models / "rgb" / "model.onnx"
        onnx_file.write_bytes(onnx_file.read_bytes()[:-7] + b"garbage")
        reply = request(d.snapshot, wire.Control(command="reload_models"))
        assert reply.status.detail["last_reload"].startswith("refused")
        assert "sha256" in reply.status.detail["last_reload"]
        assert sha(reply.status, "rgb") == sha(before, "rgb")
        # a scan still runs on the old models
        replay(scan, d.ingest, scan_id="after-refusal", pixels_per_message=7)
        d.wait(lambda s: s.state == "idle" and s.counters.get("filled") == H * W, what="scan")
        # new valid bundles, SIGHUP: swapped
        shutil.rmtree(live_models)
        make_bundles(live_models, seed=42)
        os.kill(d.proc.pid, signal.SIGHUP)
        s = d.wait(lambda s: sha(s, "rgb") != sha(before, "rgb"), what="swap")
        assert s.detail["last_reload"].startswith("ok")
        # during a scan a reload waits for the scan's end
        push = connect(d.ingest)
        replay(scan, push=push, rows=(0, 2), send_end=False, scan_id="during")
        d.wait(lambda s: s.state == "scanning", what="scan start")
        make_bundles(live_models, seed=7)
        reply = request(d.snapshot, wire.Control(command="reload_models"))
        assert reply.status.detail["reload_pending"] is True
        assert sha(reply.status, "rgb") == sha(s, "rgb")
        replay(scan, push=push, rows=(2, H), scan_id="during")
        push.close()
        s2 = d.wait(lambda t: t.state == "idle" and not t.detail["reload_pending"], what="end")
        assert sha(s2, "rgb") != sha(s, "rgb")
    finally:
        d.stop()
