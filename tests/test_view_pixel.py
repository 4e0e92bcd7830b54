"""`pixel_request` (SPEC.md 4.10) against a real daemon: the recorded spectrum, from the
open writer during a scan and from the closed file after it, and each refusal."""

from __future__ import annotations

import numpy as np
import pytest

from edge.replay import replay
from edge.watch import request
from proto import wire
from proto.dataset import open_dataset
from tests.edge_support import STREAM_GRID, Daemon, make_bundles, make_scan

H, W = 5, 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixel")
    models = make_bundles(root / "models")
    scan = make_scan(root / "scan.h5", H, W, seed=3)
    with open_dataset(scan) as ds:
        cube, live, real = ds.counts[...], ds.live_time_s, ds.real_time_s
    d = Daemon(models, root / "rec", log=root / "daemon.log").start()
    yield d, scan, cube, live, real
    d.stop()


def ask(d: Daemon, scan_id: str, x: int, y: int):
    return request(d.snapshot, wire.PixelRequest(scan_id, x, y), 5.0)


def assert_pixel(reply, cube, live, real, x: int, y: int) -> None:
    assert isinstance(reply, wire.PixelReply), reply
    assert (reply.x, reply.y) == (x, y)
    np.testing.assert_array_equal(reply.counts, cube[y, x])
    assert reply.counts.dtype == cube.dtype
    assert reply.live_time_s == pytest.approx(float(live[y, x]))
    assert reply.real_time_s == pytest.approx(float(real[y, x]))
    assert (reply.offset_kev, reply.gain_kev) == pytest.approx(
        (STREAM_GRID.offset, STREAM_GRID.gain))


def test_pixel_from_the_open_recording_and_refusals(world):
    d, scan, cube, live, real = world
    limit = 2 * W + 3  # rows 0-1 and three pixels of row 2; the scan stays open
    replay(scan, d.ingest, scan_id="open", limit=limit, send_end=False)
    d.wait(lambda s: s.counters.get("filled") == limit, what="pixels in")
    for x, y in ((0, 0), (W - 1, 1), (2, 2)):
        assert_pixel(ask(d, "open", x, y), cube, live, real, x, y)
    errors = {
        "not_recorded": ask(d, "open", 4, 2),
        "out_of_range": ask(d, "open", W, 0),
        "unknown_scan": ask(d, "nope", 0, 0),
    }
    for reason, reply in errors.items():
        assert isinstance(reply, wire.Error) and reply.reason == reason, reply
    assert d.status().errors.get("not_recorded", 0) == 0  # a click is not a rejected message


def test_pixel_from_the_closed_recording(world):
    d, scan, cube, live, real = world
    replay(scan, d.ingest, scan_id="done", pixels_per_message=4)
    d.wait(lambda s: s.state == "idle" and s.scan_id == "done", what="scan end")
    for x, y in ((0, 0), (3, 4), (W - 1, H - 1)):
        assert_pixel(ask(d, "done", x, y), cube, live, real, x, y)
