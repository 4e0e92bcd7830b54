"""Maps as data (issue 15 item 2): the `predictions` group (proto/predictions.py) is NeXus
that h5py and PyMca read with its axes; the daemon writes its last published canvases into
the closed recording exactly; `edge export-maps` TIFFs read back equal with tifffile."""

from __future__ import annotations

import json
import time

import h5py
import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.png import read_png
from edge.replay import replay
from edge.watch import Watcher
from proto import predictions
from proto.bundle import read_manifest
from proto.elements import ELEMENTS
from tests.edge_support import Daemon, make_bundles, make_scan

H, W = 5, 6


def _maps(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "elements": {e: rng.gamma(2.0, 50.0, (H, W)).astype(np.float32) for e in ELEMENTS},
        "uncertainty": {e: rng.uniform(1, 5, (H, W)).astype(np.float32) for e in ELEMENTS[:2]},
        "rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "trust": rng.uniform(0, 1, (H, W)).astype(np.float32),
        "masks": {"inferred": rng.uniform(size=(H, W)) > 0.2,
                  "out_of_domain": rng.uniform(size=(H, W)) > 0.9},
    }


def test_group_is_nexus_with_mm_axes_and_reads_back_exactly(tmp_path):
    path = make_scan(tmp_path / "s.h5", H, W)
    m = _maps()
    predictions.write(path, m["elements"], bundles={"elements": "ab" * 32}, source="test",
                      uncertainty=m["uncertainty"], rgb=m["rgb"], trust=m["trust"],
                      masks=m["masks"], pixel_size_um=250.0)
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] == "predictions"
        top = f["predictions"]
        assert top.attrs["NX_class"] == "NXentry" and top.attrs["default"] == "elements"
        g = top["elements"]
        assert g.attrs["NX_class"] == "NXdata" and g.attrs["signal"] == "Ca"
        assert list(g.attrs["auxiliary_signals"]) == list(ELEMENTS[1:])
        assert list(g.attrs["axes"]) == ["y", "x"]
        assert g["Ca"].dtype == np.float32 and g["Ca"].attrs["units"] == "counts/s"
        assert g["y"].attrs["units"] == "mm"
        np.testing.assert_allclose(g["x"][...], np.arange(W) * 0.25)
        assert "Ca_errors" in g and "Fe_errors" not in g
        rgb = top["rgb"]
        assert rgb["rgb"].attrs["interpretation"] == "rgba-image"
        assert list(rgb.attrs["axes"]) == ["y", "x", "."]
        for name in ("trust", "masks"):
            assert top[name].attrs["NX_class"] == "NXdata"
        assert json.loads(top.attrs["bundles"]) == {"elements": "ab" * 32}
        # PyMca's own NeXus helper finds every signal, default first
        nexus = pytest.importorskip("PyMca5.PyMcaIO.NexusUtils")
        assert [str(s) for s in nexus.nxDataGetSignals(g)] == list(ELEMENTS)
    p = predictions.read(path)
    for e in ELEMENTS:
        np.testing.assert_array_equal(p.elements[e], m["elements"][e])
    np.testing.assert_array_equal(p.uncertainty["Ca"], m["uncertainty"]["Ca"])
    np.testing.assert_array_equal(p.rgb, m["rgb"])
    np.testing.assert_array_equal(p.trust, m["trust"])
    for k, v in m["masks"].items():
        np.testing.assert_array_equal(p.masks[k], v)
    assert p.pixel_size_um == 250.0 and p.axis_units == "mm"


def test_rewrite_replaces_the_group_and_unknown_pixel_size_gives_index_axes(tmp_path):
    path = make_scan(tmp_path / "s.h5", H, W)
    predictions.write(path, _maps(0)["elements"], bundles={}, source="first")
    second = _maps(1)["elements"]
    predictions.write(path, {"Fe": second["Fe"]}, bundles={}, source="second")
    p = predictions.read(path)
    assert list(p.elements) == ["Fe"] and p.attrs["source"] == "second"
    np.testing.assert_array_equal(p.elements["Fe"], second["Fe"])
    assert p.axis_units == "pixel" and p.pixel_size_um is None
    np.testing.assert_array_equal(p.y, np.arange(H))
    with h5py.File(path, "r") as f:
        assert set(f) >= {"counts", "predictions"} and "predictions.partial" not in f
    with pytest.raises(ValueError, match="must be"):
        predictions.write(path, {"Fe": np.zeros((H + 1, W))}, bundles={}, source="bad")
    np.testing.assert_array_equal(predictions.read(path).elements["Fe"], second["Fe"])


def test_daemon_writes_last_canvases_and_export_maps_reads_back(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    models = make_bundles(tmp_path / "models")
    scan = make_scan(tmp_path / "scan.h5", H, W)
    daemon = Daemon(models, tmp_path / "rec", log=tmp_path / "log").start()
    w = Watcher(daemon.previews, daemon.snapshot)
    try:
        w.resync()
        replay(scan, daemon.ingest, pixels_per_message=4, scan_id="maps")
        deadline = time.monotonic() + 20
        while w.ended != "maps":
            assert time.monotonic() < deadline, "no end of scan seen"
            w.poll(100)
        daemon.wait(lambda s: s.state == "idle", what="scan end")
        mirror = w.mirror
    finally:
        w.close()
        daemon.stop()
    rec = tmp_path / "rec" / "maps.h5"
    p = predictions.read(rec)
    # exactly the last published canvases
    np.testing.assert_array_equal(np.stack([p.elements[e] for e in ELEMENTS]), mirror.elements)
    np.testing.assert_array_equal(p.rgb, mirror.rgb)
    np.testing.assert_array_equal(p.trust, mirror.trust)
    assert p.masks["inferred"].all() and p.pixel_size_um == 100.0
    assert p.bundles == {k: read_manifest(models / k).sha256 for k in ("rgb", "elements", "trust")}
    assert p.attrs["pixels"] == H * W

    out = tmp_path / "tiff"
    assert edge_main(["export-maps", str(rec), "--tiff", str(out)]) == 0
    for e in ELEMENTS:
        back = tifffile.imread(out / f"{e}.tif")
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, p.elements[e])
    np.testing.assert_array_equal(tifffile.imread(out / "trust.tif"), p.trust)
    np.testing.assert_array_equal(tifffile.imread(out / "rgb.tif"), p.rgb)
    np.testing.assert_array_equal(read_png(out / "rgb.png"), p.rgb)
    with tifffile.TiffFile(out / "Fe.tif") as t:  # 100 um pixels = 100 per cm
        assert t.pages[0].tags["XResolution"].value == (100, 1)


def test_export_maps_without_predictions_is_one_line(tmp_path, capsys):
    pytest.importorskip("tifffile")
    scan = make_scan(tmp_path / "scan.h5", H, W)
    assert edge_main(["export-maps", str(scan), "--tiff", str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no 'predictions' group" in err


def test_canvas_masks_out_of_domain_and_unfamiliar_pixels(tmp_path):
    from edge.canvas import Canvas
    from edge.maps import write_canvas

    path = make_scan(tmp_path / "s.h5", H, W)
    canvas = Canvas(H, W, ELEMENTS)
    yy, xx = np.nonzero(np.ones((H, W), bool))
    rng = np.random.default_rng(0)
    canvas.update(xx[:-3], yy[:-3], rng.uniform(size=(H * W - 3, 3)),
                  rng.gamma(2, 10, (H * W - 3, len(ELEMENTS))), rng.uniform(size=H * W - 3))
    canvas.domain = {"elements": (rng.uniform(size=(H, W)) > 0.7).astype(np.uint8)}
    canvas.threshold = 0.5
    write_canvas(path, canvas, {"trust": "cd" * 32}, 50.0, source="test")
    p = predictions.read(path)
    np.testing.assert_array_equal(p.masks["inferred"], canvas.coverage)
    assert not p.masks["inferred"][-1, -3:].any()
    np.testing.assert_array_equal(p.masks["out_of_domain_elements"],
                                  canvas.domain["elements"] > 0)
    np.testing.assert_array_equal(p.masks["unfamiliar"], canvas.coverage & (canvas.trust > 0.5))
    assert p.attrs["trust_threshold"] == 0.5 and p.x[1] == pytest.approx(0.05)
