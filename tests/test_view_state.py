"""The viewer's state and what it sends a browser: overviews, detail, bounded per-page work."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from edge.view.frames import WHOLE, Browser
from edge.view.state import ViewState, block_mean, overview_level, split_sigma
from proto import wire

NAMES = ("Fe", "Pb", "Fe_sigma")


def start(w: int, h: int, scan_id: str = "s") -> wire.ScanStart:
    return wire.ScanStart(scan_id, w, h, 16, 0.0, 0.02, 0.1, 50.0, 100.0)


def preview(topic: str, region, data, scan_id: str = "s", seq: int = 1, full=False):
    names = {"rgb": ("R", "G", "B"), "trust": ("trust",), "elements": NAMES}[topic]
    return wire.Preview(topic, scan_id, seq, tuple(region), full, names, data)


def unpack(msg: bytes) -> tuple[dict, memoryview]:
    (n,) = struct.unpack_from("<I", msg)
    assert (4 + n) % 4 == 0  # the payload starts aligned for a Float32Array
    return json.loads(msg[4:4 + n]), memoryview(msg)[4 + n:]


def test_overview_level_keeps_a_side_within_the_limit():
    assert overview_level(1024, 1024) == 0
    assert overview_level(1025, 10) == 1
    assert overview_level(4096, 4096) == 2
    assert overview_level(1, 5000) == 3
    assert overview_level(16384, 16384) == 4


def test_block_mean_handles_partial_edge_blocks():
    a = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    m = block_mean(a, 4)
    assert m.shape == (2, 2, 2)
    assert m[1, 1, 1] == pytest.approx(a[1, 4:, 4:].mean())
    assert m[0, 0, 0] == pytest.approx(a[0, :4, :4].mean())


def test_split_sigma_pairs_uncertainty_planes():
    assert split_sigma(NAMES) == ([0, 1], [2, -1])
    assert split_sigma(("Ca", "Fe")) == ([0, 1], [-1, -1])
    assert split_sigma(("Ca_errors", "Ca", "Pb")) == ([1, 2], [0, -1])


def test_overview_follows_every_region_exactly():
    st = ViewState(max_side=16)
    st.reset("s", start(50, 37))  # 50 px wide, 16 a side: level 2 (13 x 10 blocks)
    assert st.level == 2
    rng = np.random.default_rng(1)
    for _ in range(20):
        x0, y0 = rng.integers(0, 45), rng.integers(0, 33)
        w, h = rng.integers(1, 50 - x0 + 1), rng.integers(1, 37 - y0 + 1)
        st.apply(preview("elements", (x0, y0, w, h),
                         rng.gamma(2, 10, (3, h, w)).astype(np.float32)))
        st.apply(preview("rgb", (x0, y0, w, h), rng.integers(0, 256, (h, w, 3), np.uint8)))
    np.testing.assert_allclose(st.over["elements"], block_mean(st.full["elements"], 4),
                               rtol=1e-5)
    rgb = np.rint(block_mean(st.full["rgb"].transpose(2, 0, 1).astype(np.float32), 4))
    np.testing.assert_array_equal(st.over["rgb"], rgb.astype(np.uint8).transpose(1, 2, 0))
    assert st.vmax == pytest.approx(st.full["elements"].max(axis=(1, 2)))


def test_previews_that_do_not_fit_are_refused():
    st = ViewState()
    st.reset("s", start(4, 3))
    assert st.apply(preview("trust", (2, 0, 3, 1), np.zeros((1, 3), np.float32))) is None
    assert st.apply(preview("trust", (0, 0, 1, 1), np.zeros((1, 1), np.float32), "t")) is None
    assert st.apply(preview("trust", (1, 1, 2, 2), np.ones((2, 2), np.float32))) == (1, 1, 2, 2)


def test_a_slow_page_gets_one_whole_canvas_not_a_backlog():
    b = Browser()
    for x in range(500):  # 500 updates while the page was busy: still one box per topic
        b.mark("rgb", (x % 100, x // 100, 1, 1), 100, 100)
    assert b.pending == {"rgb": (0, 0, 100, 5)}
    b.mark("rgb", (0, 90, 100, 10), 100, 100)  # together over a quarter of the canvas
    assert b.pending["rgb"] == WHOLE and b.resyncs == 1
    assert len(b.pending) == 1


def test_a_page_gets_the_overview_then_only_what_changed_then_detail_on_zoom():
    st = ViewState(max_side=8)
    st.reset("s", start(32, 16))  # level 2: overview 8 x 4
    full = np.random.default_rng(2).gamma(2, 10, (3, 16, 32)).astype(np.float32)
    st.apply(preview("elements", (0, 0, 32, 16), full, full=True))
    b = Browser()
    msgs = [job() for job in b.jobs(st)]
    assert json.loads(msgs[0])["t"] == "scan" and json.loads(msgs[0])["level"] == 2
    head, payload = unpack(msgs[2])
    assert (head["layer"], head["level"], head["w"], head["h"]) == ("o", 2, 8, 4)
    np.testing.assert_allclose(np.frombuffer(payload, np.float32).reshape(3, 4, 8),
                               block_mean(full, 4), rtol=1e-6)
    # one pixel changes: the page gets the one overview block that holds it
    b.mark("elements", st.apply(preview("elements", (9, 5, 1, 1),
                                        np.ones((3, 1, 1), np.float32), seq=2)), 32, 16)
    head, _ = unpack(next(m for m in (j() for j in b.jobs(st)) if isinstance(m, bytes)))
    assert (head["x"], head["y"], head["w"], head["h"]) == (2, 1, 1, 1)
    # zoom on a 6 x 5 corner: full resolution there (level 0), aligned, and the overview stays
    b.zoom(st, [1, 2, 6, 5])
    out = [j() for j in b.jobs(st)]
    assert json.loads(out[0]) == {"t": "detail", "level": 0, "x": 1, "y": 2, "w": 6, "h": 5}
    assert {unpack(m)[0]["layer"] for m in out if isinstance(m, bytes)} == {"d"}  # no overview
    head, payload = unpack(next(m for m in out if isinstance(m, bytes)
                                and unpack(m)[0]["layer"] == "d"))
    np.testing.assert_array_equal(np.frombuffer(payload, np.float32).reshape(3, 5, 6),
                                  st.full["elements"][:, 2:7, 1:7])
    b.zoom(st, None)
    assert json.loads(b.jobs(st)[0]()) == {"t": "detail"}


def test_out_of_domain_masks_and_the_trust_threshold_reach_the_page():
    st = ViewState(max_side=4)
    st.reset("s", start(8, 8))  # level 1: 4 x 4 blocks
    domain = np.zeros((8, 8), np.uint8)
    domain[5, 6] = 1  # one pixel outside the training domain
    st.apply(wire.Preview("trust", "s", 1, (0, 0, 8, 8), True, ("trust",),
                          np.ones((8, 8), np.float32), domain=domain, threshold=0.7))
    head, payload = unpack(next(m for m in (j() for j in Browser().jobs(st))
                                if isinstance(m, bytes)))
    assert head["topic"] == "trust" and head["threshold"] == 0.7 and head["domain"] is True
    mask = np.frombuffer(payload[4 * 16:], np.uint8).reshape(4, 4)
    assert mask[2, 3] == 1 and mask.sum() == 1  # its block is marked, no other


def test_a_refresh_of_what_the_viewer_holds_changes_nothing():
    st = ViewState()
    st.reset("s", start(30, 20))
    frame = np.random.default_rng(3).gamma(2, 10, (3, 20, 30)).astype(np.float32)
    assert st.apply(preview("elements", (0, 0, 30, 20), frame, full=True)) == (0, 0, 30, 20)
    assert st.apply(preview("elements", (0, 0, 30, 20), frame, full=True))[2:] == (0, 0)
    frame = frame.copy()
    frame[1, 7, 12] += 1.0  # one pixel of one plane: only its box is written and announced
    assert st.apply(preview("elements", (0, 0, 30, 20), frame, seq=2)) == (12, 7, 1, 1)
    np.testing.assert_array_equal(st.full["elements"], frame)
