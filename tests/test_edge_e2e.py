"""The daemon end to end, as a real process on loopback: replay -> daemon -> subscriber."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq

from edge.replay import connect, replay
from edge.watch import Watcher
from proto import wire
from proto.dataset import open_dataset
from tests.edge_support import STREAM_GRID, Daemon, make_bundles, make_scan, offline

H, W = 6, 7


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge")
    models = make_bundles(root / "models")
    scan = make_scan(root / "scan.h5", H, W)
    with open_dataset(scan) as ds:
        cube, live = ds.counts[...], ds.live_time_s
    return root, models, scan, cube, live, offline(models, cube, live, STREAM_GRID)


@pytest.fixture
def daemon(world, tmp_path):
    _, models, *_ = world
    d = Daemon(models, tmp_path / "rec", "--max-message-bytes", "200000", log=tmp_path / "log")
    d.start()
    yield d
    d.stop()


def follow_to_end(w: Watcher, scan_id: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while w.ended != scan_id:
        assert time.monotonic() < deadline, "no end of scan seen by the subscriber"
        w.poll(100)


def assert_canvases(mirror, ref) -> None:
    assert mirror.rgb is not None and mirror.elements is not None and mirror.trust is not None
    assert np.abs(mirror.rgb.astype(int) - ref["rgb"].astype(int)).max() <= 1
    assert (mirror.rgb == ref["rgb"]).mean() > 0.99
    np.testing.assert_allclose(mirror.elements, ref["elements"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mirror.trust, ref["trust"], rtol=1e-5, atol=1e-5)


def assert_recording(path, cube, live) -> None:
    with open_dataset(path) as ds:
        assert ds.acquired.all()
        assert ds.counts.dtype == cube.dtype
        np.testing.assert_array_equal(ds.counts[...], cube)
        np.testing.assert_array_equal(ds.live_time_s, live)
        assert ds.grid == STREAM_GRID


def test_replay_matches_offline_inference_and_recording(world, daemon):
    _, _, scan, cube, live, ref = world
    w = Watcher(daemon.previews, daemon.snapshot)
    try:
        w.resync()
        r = replay(scan, daemon.ingest, order="serpentine", pixels_per_message=3, scan_id="e2e")
        assert r.pixels == H * W
        follow_to_end(w, "e2e")
        assert_canvases(w.mirror, ref)
    finally:
        w.close()
    s = daemon.wait(lambda s: s.state == "idle", what="scan end")
    assert s.counters["accepted"] == H * W and s.counters["rejected_total"] == 0
    assert "p99" in s.latency_ms
    # where the daemon's CPU went: never more in the models than in all (42 pixels of these
    # stand-in models can take under half a millisecond: test_models_cpu_is_counted)
    assert s.counters["cpu_ms.models"] <= s.counters["cpu_ms"]
    assert_recording(daemon.recordings / "e2e.h5", cube, live)


def test_models_cpu_is_counted(daemon, tmp_path):
    """A scan of 2,000 pixels: the daemon counts the CPU its models spent, some of all."""
    scan = make_scan(tmp_path / "big.h5", 40, 50)
    replay(scan, daemon.ingest, pixels_per_message=16, scan_id="cpu")
    s = daemon.wait(lambda s: s.state == "idle" and s.counters["accepted"] == 2000,
                    what="scan end")
    assert 0 < s.counters["cpu_ms.models"] <= s.counters["cpu_ms"]


def test_late_joiner_converges(world, daemon):
    _, _, scan, _, _, ref = world
    push = connect(daemon.ingest)
    replay(scan, push=push, rows=(0, 3), send_end=False, scan_id="late", pixels_per_message=2)
    daemon.wait(lambda s: s.counters.get("accepted", 0) >= 3 * W, what="first half")
    w = Watcher(daemon.previews, daemon.snapshot)
    try:
        snap = w.resync()
        assert snap.scan_id == "late" and snap.scan_start.width == W
        half = w.mirror.rgb.copy()
        np.testing.assert_array_equal(half[:3], ref["rgb"][:3])  # the snapshot has the first half
        replay(scan, push=push, rows=(3, H), scan_id="late", pixels_per_message=2)
        follow_to_end(w, "late")
        assert_canvases(w.mirror, ref)
    finally:
        w.close()
        push.close()


def spectra_map(scan_id, x, y, counts, live=0.01, dtype="<u2", seq=1) -> dict:
    """A hand-built spectra message (to send what `wire.encode` refuses to build)."""
    counts = np.asarray(counts)

    def arr(a, dt):
        a = np.asarray(a)
        return {"dtype": dt, "shape": list(a.shape), "bytes": a.astype(dt).tobytes()}

    n = counts.shape[0]
    return {"type": "spectra", "version": [1, 0], "scan_id": scan_id, "seq": seq, "pixels": {
        "x": arr(np.full(n, x), "<u4"), "y": arr(np.full(n, y), "<u4"),
        "live_time_s": arr(np.full(n, live), "<f4"), "real_time_s": arr(np.full(n, 0.02), "<f4"),
        "counts": arr(counts, dtype)}}


def test_bad_inputs_rejected_counted_and_scan_completes(world, daemon):
    _, _, scan, cube, live, ref = world
    push = connect(daemon.ingest)
    pack = msgpack.packb
    c = STREAM_GRID.channels
    try:
        replay(scan, push=push, rows=(0, 3), send_end=False, scan_id="bad")
        bad = {
            "malformed": b"\x00\xffnot msgpack at all",
            "wrong_channels": pack(spectra_map("bad", 0, 0, np.ones((1, c - 1)))),
            "wrong_dtype": pack(spectra_map("bad", 0, 0, np.ones((1, c)), dtype="<u4")),
            "nan_live": pack(spectra_map("bad", 0, 0, np.ones((1, c)), live=np.nan)),
            "nan_counts": pack(spectra_map("bad", 0, 0, np.full((1, c), np.nan), dtype="<f4")),
            "out_of_range": pack(spectra_map("bad", W, 0, np.ones((1, c)))),
            "unknown_scan": pack(spectra_map("nosuchscan", 0, 0, np.ones((1, c)))),
            "oversized": pack(spectra_map("bad", 0, 0, np.ones((120, c)), dtype="<u4")),
        }
        for body in bad.values():
            push.send(body)
        push.send_multipart([b"two", b"frames"])
        replay(scan, push=push, rows=(3, H), scan_id="bad")
        s = daemon.wait(lambda s: s.state == "idle" and s.counters.get("accepted", 0) == H * W,
                        what="scan completes around bad input")
    finally:
        push.close()
    e = s.errors
    assert s.counters["rejected_total"] == len(bad) + 1, e
    assert e.get("malformed", 0) >= 1
    assert e.get("bad_shape") == 1  # wrong channel count (SPEC.md 4.2)
    assert e.get("bad_value", 0) >= 1  # NaN live time (wire decode)
    assert e.get("bad_dtype", 0) == 2  # float (NaN) counts; uint32 in a uint16 scan
    assert e.get("out_of_range") == 1
    assert e.get("unknown_scan") == 1
    assert e.get("too_large") == 1
    assert e.get("multipart") == 1
    w = Watcher(daemon.previews, daemon.snapshot)
    try:
        w.resync()
        assert_canvases(w.mirror, ref)
    finally:
        w.close()
    assert_recording(daemon.recordings / "bad.h5", cube, live)


def test_scan_refused_when_models_cannot_serve_it(world, daemon):
    push = connect(daemon.ingest)
    try:
        start = wire.ScanStart(scan_id="narrow", width=4, height=4, channels=100,
                               offset_kev=0.0, gain_kev=0.05, dwell_s=0.01, beam_spot_um=50.0,
                               pixel_size_um=100.0)  # 0-5 keV: the models need 0-16 keV
        push.send(wire.encode(start))
        push.send(wire.encode(wire.Spectra(
            scan_id="narrow", seq=1, x=np.zeros(1, np.uint16), y=np.zeros(1, np.uint16),
            live_time_s=np.full(1, 0.01, np.float32), real_time_s=np.full(1, 0.01, np.float32),
            counts=np.ones((1, 100), np.uint16))))
        s = daemon.wait(lambda s: s.errors.get("refused_scan", 0) == 1, what="refusal")
    finally:
        push.close()
    assert "keV" in s.detail["refused_scans"]["narrow"]
    assert s.errors.get("scan_refused") == 1 and s.state == "idle"


def test_sigterm_and_client_leaving_do_not_hang(world, daemon):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.snapshot)
    sock.send(b"garbage request")
    assert sock.poll(5000)
    reply = wire.decode(sock.recv())
    assert isinstance(reply, wire.Error) and reply.reason == "malformed"
    sock.close(0)
    daemon.proc.terminate()
    assert daemon.proc.wait(10) == 0
