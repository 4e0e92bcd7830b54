"""A small painted scene and line-window models for the live view's tests, bench and screenshot.

The scene has peaks where its elements' lines are (a gesso ground, a lead-white panel,
an ochre face, a gilded halo, a green robe, a vermilion spot), so the page shows a
recognisable picture, maps with structure and spectra with marked lines that match.
The models are exact and tiny: elements = counts/s summed in a window around each main
line; rgb = the elements' colours mixed by their share; trust = the vermilion share (a
pigment "unlike the training data").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from proto.bundle import write_bundle
from proto.dataset import write_dataset
from proto.elements import ELEMENTS
from tests.edge_support import STREAM_GRID, TINY_MODEL_GRID

LINE_KEV = {"Ca": 3.692, "Mn": 5.899, "Fe": 6.404, "Cu": 8.048, "As": 10.544,
            "Au": 9.713, "Hg": 9.989, "Pb": 12.614}  # Pb: L-beta (L-alpha sits on As K-alpha)
COLOURS = {"Ca": (0.93, 0.90, 0.82), "Mn": (0.35, 0.25, 0.2), "Fe": (0.78, 0.52, 0.24),
           "Cu": (0.16, 0.55, 0.38), "As": (0.9, 0.8, 0.2), "Au": (0.88, 0.72, 0.22),
           "Hg": (0.86, 0.16, 0.12), "Pb": (0.96, 0.95, 0.92)}


def composition(height: int, width: int) -> dict[str, np.ndarray]:
    """Counts/s of each element's line per pixel (a panel painting in miniature)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    sy, sx = height / 40.0, width / 56.0
    r = np.hypot((x - 20 * sx) / sx, (y - 17 * sy) / sy)
    panel = (x >= 3 * sx) & (x < 53 * sx) & (y >= 3 * sy) & (y < 37 * sy)
    face = r < 8
    halo = (r >= 10) & (r < 12.5)
    robe = panel & (y >= 27 * sy) & (x >= 8 * sx) & (x < 34 * sx)
    lips = np.hypot((x - 20 * sx) / sx, (y - 21 * sy) / sy) < 2
    comp = {e: np.zeros((height, width)) for e in ELEMENTS}
    comp["Ca"] += 3000.0
    comp["Pb"] += np.where(panel, 9000.0, 0.0)
    comp["Fe"] += np.where(face, 7000.0, 300.0)
    comp["Au"] += np.where(halo, 8000.0, 0.0)
    comp["Cu"] += np.where(robe, 6000.0, 0.0)
    comp["Hg"] += np.where(lips, 9000.0, 0.0)
    comp["Mn"] += np.where(panel & ~face & ~robe & (x > 36 * sx), 2500.0, 0.0)
    return comp


def make_painting(path: Path, height: int = 40, width: int = 56, live_s: float = 0.02,
                  seed: int = 0) -> Path:
    """A dataset file of the scene: Gaussian peaks (FWHM ~150 eV) on a weak continuum."""
    rng = np.random.default_rng(seed)
    e = STREAM_GRID.offset + STREAM_GRID.gain * np.arange(STREAM_GRID.channels)
    sigma = 0.064
    rate = np.full((height, width, STREAM_GRID.channels), 2.0)  # continuum, c/s per channel
    for name, c in composition(height, width).items():
        peak = np.exp(-0.5 * ((e - LINE_KEV[name]) / sigma) ** 2)
        rate += c[..., None] * (peak / peak.sum())[None, None, :]
    live = np.full((height, width), live_s, np.float32)
    counts = rng.poisson(rate * live_s).astype(np.uint16)
    return write_dataset(path, counts, STREAM_GRID, live, live * np.float32(1.04),
                         scan={"dwell_s": live_s, "pixel_size_um": 200.0,
                               "beam_spot_um": 100.0},
                         instrument={"name": "view-test"})


def _windows() -> np.ndarray:
    """(channels, elements) 0/1: the model-grid channels within 0.1 keV of each line."""
    g = TINY_MODEL_GRID
    e = g.offset + g.gain * np.arange(g.channels)
    return np.stack([(np.abs(e - LINE_KEV[n]) <= 0.1) for n in ELEMENTS], axis=1
                    ).astype(np.float32)


def _graph(kind: str) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d, k = TINY_MODEL_GRID.channels, len(ELEMENTS)
    init = [numpy_helper.from_array(_windows(), "win")]
    nodes = [helper.make_node("MatMul", ["spectra", "win"], ["roi"]),
             helper.make_node("Relu", ["roi"], ["pos"])]
    if kind == "elements":
        nodes.append(helper.make_node("Identity", ["pos"], ["out"]))
        width = k
    else:  # each element's share of the line counts, then a colour or the vermilion share
        mix = (np.array([COLOURS[n] for n in ELEMENTS], np.float32) if kind == "rgb"
               else np.array([[1.0 if n == "Hg" else 0.0] for n in ELEMENTS], np.float32))
        init += [numpy_helper.from_array(np.array([1.0], np.float32), "eps"),
                 numpy_helper.from_array(np.array([1], np.int64), "axis"),
                 numpy_helper.from_array(mix, "mix")]
        nodes += [helper.make_node("ReduceSum", ["pos", "axis"], ["total"], keepdims=1),
                  helper.make_node("Add", ["total", "eps"], ["safe"]),
                  helper.make_node("Div", ["pos", "safe"], ["share"]),
                  helper.make_node("MatMul", ["share", "mix"], ["out"])]
        width = mix.shape[1]
    graph = helper.make_graph(
        nodes, f"view_{kind}",
        [helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["batch", d])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", width])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_line_bundles(folder: Path) -> Path:
    """rgb, elements and trust bundles under folder/{rgb,elements,trust}."""
    specs = {"rgb": (("R", "G", "B"), "srgb"), "elements": (ELEMENTS, "counts/s"),
             "trust": (("vermilion_share",), "score")}
    for kind, (outputs, units) in specs.items():
        write_bundle(folder / kind, _graph(kind), {
            "kind": kind, "grid": TINY_MODEL_GRID, "output_name": "out",
            "outputs": list(outputs), "units": units, "opset": 17,
            "training": {"data": "view test: exact line windows, no training"}})
    return folder


def test_scene_maps_find_what_was_painted(tmp_path):
    from proto.dataset import open_dataset
    from tests.edge_support import offline

    models = make_line_bundles(tmp_path / "models")
    path = make_painting(tmp_path / "p.h5", 20, 28)
    with open_dataset(path) as ds:
        ref = offline(models, ds.counts[...], ds.live_time_s, STREAM_GRID)
    truth = composition(20, 28)
    fe = ref["elements"][ELEMENTS.index("Fe")]
    face = truth["Fe"] > 1000
    assert fe[face].mean() > 5 * fe[~face].mean()  # the ochre face stands out in the Fe map
    hg = ref["trust"] > 0.3
    assert hg.any() and (truth["Hg"][hg] > 0).all()  # trust flags the vermilion only
    blue = ref["rgb"][..., 2].astype(float)
    plain = (truth["Pb"] > 0) & ~face & (truth["Cu"] == 0) & (truth["Au"] == 0)
    assert blue[face & (truth["Hg"] == 0)].mean() < blue[plain].mean() - 20  # ochre is warmer


class ViewServer:
    """`python -m edge view` in a subprocess on a free loopback port, for a test daemon."""

    def __init__(self, daemon, log: Path, *extra: str) -> None:
        from tests.edge_support import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "edge", "view", "--port", str(self.port),
                    "--previews", daemon.previews, "--snapshot", daemon.snapshot, *extra]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> ViewServer:
        from tests.edge_support import ROOT

        self._logf = open(self.log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=self._logf,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)))
        deadline = time.monotonic() + timeout_s
        while b"live page" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"view did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_logf", None):
            self._logf.close()
