"""Issue 11, item 10: any preview that failed to encode crashed the daemon.

Bundles over the protocol's limits are refused at load; every publication is guarded;
a scan whose canvases would exceed `max_canvas_bytes` is refused at scan_start with the
figures; big canvases go out as tiles and snapshots in parts, under the message limits;
a scan that cannot be resumed no longer stops every later start.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from edge.canvas import (
    CANVAS_BYTES_PER_PIXEL,
    ELEMENT_BYTES_PER_PIXEL,
    RECORDING_BYTES_PER_PIXEL,
    Canvas,
    memory_refusal,
)
from edge.models import ModelSession
from edge.publisher import Publisher
from edge.recording import DatasetWriter
from edge.replay import connect
from edge.tiles import fetch_snapshot, tiles
from edge.watch import Watcher, request
from proto import wire
from proto.bundle import BundleError, write_bundle
from tests.edge_support import STREAM_GRID, TINY_MODEL_GRID, Daemon, _mlp, make_bundles, offline


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("big") / "models")


def start_msg(scan_id: str, width: int, height: int) -> wire.ScanStart:
    return wire.ScanStart(scan_id=scan_id, width=width, height=height,
                          channels=STREAM_GRID.channels, offset_kev=STREAM_GRID.offset,
                          gain_kev=STREAM_GRID.gain, dwell_s=0.01, beam_spot_um=50.0,
                          pixel_size_um=100.0, counts_dtype="<u2")


def test_item10_elements_bundle_over_64_maps_refused_at_load(models, tmp_path):
    """SPEC allows 64 element maps per preview; a bundle with 65 loaded, and its first
    preview crashed the daemon. It is refused at load, with the reason."""
    names = [f"X{i}" for i in range(65)]
    folder = tmp_path / "elements65"
    write_bundle(folder, _mlp(TINY_MODEL_GRID.channels, 65, 8, "relu", 1), {
        "kind": "elements", "grid": TINY_MODEL_GRID, "output_name": "out", "outputs": names,
        "units": "counts/s", "opset": 17, "training": {"data": "edge test"}})
    with pytest.raises(BundleError, match=r"65 outputs.*at most 64"):
        ModelSession(folder, threads=1)


def test_item10_publishing_survives_a_frame_that_cannot_be_encoded():
    """Guarded anyway: a canvas whose element frame the protocol refuses costs that
    frame (counted, logged), not the daemon, and the other topics still go out."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:0")
    try:
        p = Publisher(pub, rate_hz=10, full_every_s=1)
        canvas = Canvas(4, 5, tuple(f"X{i}" for i in range(65)))
        p.publish(canvas, "s1", 1, time.monotonic(), force=True)
        assert p.failed == 1 and "elements" in p.last_failure
        assert p.sent_by_topic["rgb"] == 1 and p.sent_by_topic["trust"] == 1
    finally:
        pub.close(0)


def test_item10_scan_over_max_canvas_bytes_refused_with_figures(models, tmp_path):
    """A valid 16384 x 16384 scan ran the daemon out of memory while publishing; now it is
    refused at scan_start, nothing allocated, with a reason an operator can act on."""
    why = memory_refusal(16384, 16384, 8, 2 << 30)
    assert why.startswith("scan 16384 x 16384 needs 13.2 GiB") and "max_canvas_bytes" in why
    assert memory_refusal(4096, 4096, 8, 2 << 30) is None  # 0.83 GiB: served
    d = Daemon(models, tmp_path / "rec", log=tmp_path / "log").start()
    push = connect(d.ingest)
    try:
        push.send(wire.encode(start_msg("huge", 16384, 16384)))
        s = d.wait(lambda s: s.errors.get("scan_refused") == 1, what="refusal")
        assert "allows 2.0 GiB (max_canvas_bytes)" in s.detail["refused_scans"]["huge"]
        assert s.state == "idle" and d.proc.poll() is None
    finally:
        push.close(0)
        d.stop()
    assert not list((tmp_path / "rec").glob("huge*"))  # no recording was created


def test_item10_memory_estimate_covers_what_is_allocated(tmp_path):
    """max_canvas_bytes is only as good as the per-pixel figures behind it."""
    h, w, names = 30, 40, ("Ca", "Fe", "Pb")
    canvas = Canvas(h, w, names)
    canvas.domain = {t: np.zeros((h, w), np.uint8) for t in ("rgb", "elements", "trust")}
    held = sum(a.nbytes for a in (canvas.rgb, canvas.elements, canvas.trust, canvas.coverage,
                                  *canvas.domain.values()))
    assert held <= h * w * (CANVAS_BYTES_PER_PIXEL + ELEMENT_BYTES_PER_PIXEL * len(names))
    writer = DatasetWriter.create(tmp_path / "r.h5", h, w, STREAM_GRID, "uint16")
    try:
        maps = sum(v.nbytes for k, v in vars(writer).items()
                   if isinstance(v, np.ndarray) and v.shape == (h, w))
    finally:
        writer.close()
    assert 0 < maps <= h * w * RECORDING_BYTES_PER_PIXEL


def send_pixels(push, scan_id: str, xs, ys, seed: int = 0):
    """Spectra for these pixels, 64 per message; their counts and live times."""
    rng = np.random.default_rng(seed)
    n = len(xs)
    counts = rng.poisson(2.0, size=(n, STREAM_GRID.channels)).astype(np.uint16)
    live = rng.uniform(0.005, 0.02, n).astype(np.float32)
    for seq, i in enumerate(range(0, n, 64), start=1):
        sl = slice(i, i + 64)
        push.send(wire.encode(wire.Spectra(
            scan_id=scan_id, seq=seq, x=np.asarray(xs[sl], np.uint16),
            y=np.asarray(ys[sl], np.uint16), live_time_s=live[sl], real_time_s=live[sl] * 1.05,
            counts=counts[sl])))
    return counts, live


def serve_big_scan(models, tmp_path, width: int, height: int, preview_bytes: int,
                   reply_bytes: int) -> dict:
    """A width x height scan with a few rows and corners filled: every preview and every
    snapshot reply stays within its limit, and the watcher's canvases (PUB tiles, then a
    snapshot in parts) equal the models' offline output. Returns the figures."""
    d = Daemon(models, tmp_path / "rec", "--max-preview-bytes", str(preview_bytes),
               "--max-reply-bytes", str(reply_bytes), log=tmp_path / "log").start()
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(d.previews)
    w = Watcher(d.previews, d.snapshot)
    push = connect(d.ingest)
    try:
        push.send(wire.encode(start_msg("big", width, height)))
        ys = np.r_[np.zeros(width, int), np.full(width, height - 1), height // 2]
        xs = np.r_[np.arange(width), np.arange(width)[::-1], width // 2]
        counts, live = send_pixels(push, "big", xs, ys)
        push.send(wire.encode(wire.ScanEnd("big", "success", len(xs))))
        deadline = time.monotonic() + 60
        while w.ended != "big":
            assert time.monotonic() < deadline, "no end of scan seen"
            w.poll(100)
        biggest_preview = 0
        while sub.poll(200):
            topic, body = sub.recv_multipart()
            if topic != b"status":
                biggest_preview = max(biggest_preview, len(body))
        ref = offline(models, counts[None], live[None], STREAM_GRID)
        from_pub = (w.mirror.rgb[ys, xs], w.mirror.elements[:, ys, xs], w.mirror.trust[ys, xs])
        replies = []

        def sized(message):
            reply = request(d.snapshot, message, 30.0)
            replies.append(len(wire.encode(reply)))
            return reply

        first, frames = fetch_snapshot(sized)
        w.mirror.scan_id = ""  # draw the snapshot onto a fresh mirror
        w.mirror.begin(first.scan_start)
        for frame in frames:
            w.mirror.apply(frame)
        for rgb, elements, trust in (from_pub, (w.mirror.rgb[ys, xs],
                                                w.mirror.elements[:, ys, xs],
                                                w.mirror.trust[ys, xs])):
            assert np.abs(rgb.astype(int) - ref["rgb"][0].astype(int)).max() <= 1
            np.testing.assert_allclose(elements, ref["elements"][:, 0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(trust, ref["trust"][0], rtol=1e-5, atol=1e-5)
        untouched = np.ones((height, width), bool)
        untouched[ys, xs] = False
        assert not w.mirror.trust[untouched].any() and not w.mirror.rgb[untouched].any()
        assert d.proc.poll() is None
        return {"parts": first.parts, "frames": len(frames), "biggest_reply": max(replies),
                "biggest_preview": biggest_preview, "status": d.status()}
    finally:
        push.close(0)
        sub.close(0)
        w.close()
        d.stop()


def test_item10_big_canvas_served_in_tiles_and_parts(models, tmp_path):
    """A frame over max_preview_bytes goes out as tiles, a snapshot over max_reply_bytes
    in parts, each within its limit (small limits here: the same code serves 4096 x 4096
    under the 16 MiB / 64 MiB defaults, see serve_big_scan)."""
    preview, reply = 64 << 10, 256 << 10
    got = serve_big_scan(models, tmp_path, 300, 200, preview, reply)
    assert got["biggest_preview"] <= preview + 4096  # data plus the map's few keys
    assert got["biggest_reply"] <= reply + (64 << 10)  # tiles plus the embedded status
    assert got["parts"] > 1 and got["frames"] > 3
    assert got["status"].counters["previews_failed"] == 0
    # 300 x 200 elements: 240,000 B in tiles of 64 KiB; a tile is whole rows when one fits
    assert tiles((0, 0, 300, 200), 32, preview) == [
        (0, y, 300, min(6, 200 - y)) for y in range(0, 200, 6)]


def test_item10_unresumable_scan_moved_aside(models, tmp_path):
    """A scan left open that can be neither resumed nor closed stopped every restart
    from being clean: its sidecar is now moved aside, said in the log, and the next
    start does not try it again."""
    rec = tmp_path / "rec"
    rec.mkdir()
    sidecar = rec / "gone.active.json"
    sidecar.write_text(json.dumps({"scan_id": "gone", "path": "gone.h5",
                                   "scan": {"scan_id": "gone"}}))
    d = Daemon(models, rec, log=tmp_path / "log").start()
    try:
        assert d.status().state == "idle"
    finally:
        d.stop()
    assert not sidecar.exists() and (rec / "gone.active.unresumable").exists()
    assert "gone.active.unresumable" in (tmp_path / "log").read_text()
    d = Daemon(models, rec, log=tmp_path / "log2").start()
    try:
        assert d.status().state == "idle"
    finally:
        d.stop()
    assert "gone" not in (tmp_path / "log2").read_text()
