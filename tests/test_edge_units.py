"""Small pieces of the edge daemon, in process: canvas, PNG writer, config, inference."""

from __future__ import annotations

import argparse
import json

import numpy as np

from edge import config, png
from edge.canvas import Canvas
from edge.inference import Engine, load_models, refusal
from proto.energy import EnergyGrid, Rebinner, counts_per_live_second
from tests.edge_support import STREAM_GRID, make_bundles


def test_canvas_any_order_and_repeats_counted():
    c = Canvas(3, 4, ("Ca", "Fe"))
    rng = np.random.default_rng(0)
    order = rng.permutation(12)
    x, y = order % 4, order // 4
    rgb = rng.uniform(0, 1, (12, 3)).astype(np.float32)
    el = rng.uniform(0, 9, (12, 2)).astype(np.float32)
    assert c.update(x, y, rgb, el, el[:, :1]) == 0
    assert c.filled == 12 and c.coverage.all()
    np.testing.assert_array_equal(c.elements[1, y, x], el[:, 1])
    assert c.take_dirty("rgb") == (0, 0, 4, 3) and c.take_dirty("rgb") is None
    c.take_dirty("trust")
    # the same pixel twice in one batch and once more later: last write wins, 3 repeats
    xs, ys = np.array([1, 1]), np.array([2, 2])
    assert c.update(xs, ys, np.array([[0, 0, 0], [1, 1, 1]]), None, None) == 2
    assert c.update(xs[:1], ys[:1], np.array([[1, 0, 0]]), None, np.array([np.nan])) == 1
    assert c.repeated == 3 and c.filled == 12
    assert tuple(c.rgb[2, 1]) == (255, 0, 0) and c.trust[2, 1] == 0  # NaN never published
    assert c.take_dirty("trust") == (1, 2, 1, 1)


def test_png_roundtrip_and_panels(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(png.read_png(png.write_png(tmp_path / "a.png", img)), img)
    panel = png.panel(np.arange(20, dtype=np.float32).reshape(4, 5), "Fe c/s", side=64)
    assert panel.shape[2] == 3 and panel.shape[0] >= 64
    assert (panel != 24).any()
    assert png.grid([panel, panel, panel], columns=2).shape[:2] == (2 * panel.shape[0],
                                                                    2 * panel.shape[1])


def test_config_file_and_flags(tmp_path):
    f = tmp_path / "edge.toml"
    f.write_text('[edge]\nrate_hz = 4.0\nrecord = false\nmodels = "m"\n')
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    cfg = config.from_args(parser.parse_args(["--config", str(f), "--models", "flag"]))
    assert cfg.rate_hz == 4.0 and cfg.record is False and cfg.models == "flag"
    assert cfg.ingest.startswith("tcp://127.0.0.1:")
    (tmp_path / "bad.json").write_text(json.dumps({"nonsense": 1}))
    try:
        config.from_args(parser.parse_args(["--config", str(tmp_path / "bad.json")]))
    except ValueError as e:
        assert "nonsense" in str(e)
    else:
        raise AssertionError("unknown setting accepted")


def test_engine_equals_reference_preprocessing(tmp_path):
    sessions = load_models(make_bundles(tmp_path / "m"), threads=1)
    rng = np.random.default_rng(2)
    counts = rng.poisson(2.0, (37, STREAM_GRID.channels)).astype(np.uint32)
    live = rng.uniform(0.01, 0.1, 37).astype(np.float32)
    out = Engine(sessions, STREAM_GRID, max_batch=8).run(counts, live)  # 5 micro-batches
    for kind, s in sessions.items():
        x = counts_per_live_second(counts, live, Rebinner(STREAM_GRID, s.manifest.grid))
        np.testing.assert_allclose(out[kind], s.run(x), rtol=1e-6, atol=1e-6)
    assert refusal(sessions, STREAM_GRID) is None
    assert "keV" in refusal(sessions, EnergyGrid(0.0, 0.01, 100))
