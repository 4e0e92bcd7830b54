"""The command line: serve, replay, watch, status and reload as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from edge.png import read_png
from proto.dataset import open_dataset
from tests.edge_support import ROOT, STREAM_GRID, Daemon, make_bundles, make_scan, offline


def edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_replay_watch_status(tmp_path):
    models = make_bundles(tmp_path / "models")
    scan = make_scan(tmp_path / "cli.h5", 5, 8, seed=9)
    d = Daemon(models, tmp_path / "rec", log=tmp_path / "log").start()
    try:
        watch = subprocess.Popen(
            [sys.executable, "-m", "edge", "watch", "--previews", d.previews, "--snapshot",
             d.snapshot, "--out", str(tmp_path / "png"), "--every", "0.5", "--timeout", "60"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            import time

            time.sleep(1.5)  # the watcher subscribes and takes its snapshot first
            r = edge("replay", str(scan), "--ingest", d.ingest, "--order", "serpentine",
                     "--pixels-per-message", "4", "--dwell", "0.002")
            assert r.returncode == 0, r.stderr
            assert "replayed 40 pixels" in r.stdout
            out, _ = watch.communicate(timeout=60)
        finally:
            if watch.poll() is None:
                watch.kill()
        assert watch.returncode == 0, out
        assert "done: scan cli" in out
        with open_dataset(scan) as ds:
            ref = offline(models, ds.counts[...], ds.live_time_s, STREAM_GRID)
        rgb = read_png(tmp_path / "png" / "rgb.png")
        f = rgb.shape[0] // 5
        assert np.abs(rgb[::f, ::f].astype(int) - ref["rgb"].astype(int)).max() <= 1
        for name in ("elements.png", "trust.png"):
            assert (tmp_path / "png" / name).stat().st_size > 100
        s = edge("status", "--snapshot", d.snapshot)
        assert s.returncode == 0, s.stderr
        status = json.loads(s.stdout)
        assert status["counters"]["accepted"] == 40 and status["state"] == "idle"
        rl = edge("reload", "--snapshot", d.snapshot)
        assert rl.returncode == 0 and json.loads(rl.stdout)["detail"]["control"]["ok"]
    finally:
        d.stop()
    assert edge("status", "--snapshot", d.snapshot, "--timeout", "0.3").returncode == 1


def test_watch_follows_a_rerun_of_the_same_scan_id(tmp_path):
    """A watcher that joins after scan "cli" ended waits for the next one, even when the
    scanner re-runs the same scan id, and stops at its end instead of at its timeout."""
    import threading
    import time

    from edge.replay import replay
    from edge.watch import watch

    models = make_bundles(tmp_path / "models")
    scan = make_scan(tmp_path / "cli.h5", 4, 5, seed=3)
    d = Daemon(models, tmp_path / "rec", "--no-record", log=tmp_path / "log").start()
    try:
        replay(scan, d.ingest)
        d.wait(lambda s: s.state == "idle" and s.counters.get("accepted") == 20, what="run 1")
        result: dict = {}

        def follow() -> None:
            t0 = time.monotonic()
            result["mirror"] = watch(d.previews, d.snapshot, tmp_path / "png", every_s=0.5,
                                     timeout_s=30, quiet=True)
            result["seconds"] = time.monotonic() - t0

        watcher = threading.Thread(target=follow)
        watcher.start()
        time.sleep(1.0)  # joined while idle, after run 1
        assert watcher.is_alive()  # run 1 is over: not the scan it waits for
        replay(scan, d.ingest)
        watcher.join(40)
        assert not watcher.is_alive()
        assert result["seconds"] < 25  # ended with run 2, not by its 30 s timeout
        assert result["mirror"].status.counters["accepted"] == 40
    finally:
        d.stop()
