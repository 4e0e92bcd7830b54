"""Helpers for the edge tests and bench: tiny bundles, tiny scans, a daemon subprocess.

The daemon always runs as a real `python -m edge serve` process on 127.0.0.1
with free ports; `Daemon.stop()` (called from fixtures' teardown) kills it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from proto import wire
from proto.bundle import write_bundle
from proto.dataset import write_dataset
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid, Rebinner

ROOT = Path(__file__).resolve().parents[1]
STREAM_GRID = EnergyGrid(0.0, 0.04, 512)  # -0.02 .. 20.46 keV
TINY_MODEL_GRID = EnergyGrid(0.05, 0.08, 200)  # 0.01 .. 16.01 keV, inside the stream


def _mlp(d: int, k: int, hidden: int, head: str, seed: int) -> bytes:
    """float32 [N, d] -> [N, k]: sqrt -> dense(hidden, relu) -> dense(k) -> head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((d, hidden)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, k)) / np.sqrt(hidden)).astype(np.float32)
    b2 = rng.standard_normal(k).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Relu", ["spectra"], ["r"]),
        helper.make_node("Sqrt", ["r"], ["s"]),
        helper.make_node("MatMul", ["s", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("MatMul", ["hr", "w2"], ["o"]),
        helper.make_node("Add", ["o", "b2"], ["z"]),
        helper.make_node({"sigmoid": "Sigmoid", "relu": "Relu", "abs": "Abs"}[head],
                         ["z"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, f"tiny_{head}",
        [helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["batch", d])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", k])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(b2, "b2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_bundles(folder: Path, grid: EnergyGrid = TINY_MODEL_GRID, hidden: int = 16,
                 seed: int = 0) -> Path:
    """rgb, elements and trust bundles under folder/{rgb,elements,trust}."""
    specs = {
        "rgb": (("R", "G", "B"), "sigmoid", "srgb"),
        "elements": (ELEMENTS, "relu", "counts/s"),
        "trust": (("reconstruction_error",), "abs", "score"),
    }
    for i, (kind, (outputs, head, units)) in enumerate(specs.items()):
        onnx_bytes = _mlp(grid.channels, len(outputs), hidden, head, seed + i)
        write_bundle(folder / kind, onnx_bytes, {
            "kind": kind, "grid": grid, "output_name": "out", "outputs": list(outputs),
            "units": units, "opset": 17, "training": {"data": "edge test, random weights"},
        })
    return folder


def make_scan(path: Path, height: int = 6, width: int = 7, grid: EnergyGrid = STREAM_GRID,
              seed: int = 0, dtype=np.uint16) -> Path:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.5, 2.0, size=(height, width, 1)) * np.linspace(3, 0.1, grid.channels)
    counts = rng.poisson(lam).astype(dtype)
    live = rng.uniform(0.005, 0.02, size=(height, width)).astype(np.float32)
    real = live * np.float32(1.05)
    return write_dataset(path, counts, grid, live, real,
                         scan={"dwell_s": 0.0, "pixel_size_um": 100.0, "beam_spot_um": 50.0},
                         instrument={"name": "edge-test"})


def offline(models: Path, counts: np.ndarray, live: np.ndarray, grid: EnergyGrid) -> dict:
    """Reference: the same bundles through ONNX Runtime on the whole cube at once."""
    from edge.canvas import to_uint8
    from edge.models import ModelSession
    from proto.energy import counts_per_live_second

    h, w, c = counts.shape
    flat, lv = counts.reshape(-1, c), live.reshape(-1)
    out = {}
    for kind in ("rgb", "elements", "trust"):
        s = ModelSession(models / kind, threads=1)
        y = s.run(counts_per_live_second(flat, lv, Rebinner(grid, s.manifest.grid)))
        out[kind] = y
    return {
        "rgb": to_uint8(out["rgb"]).reshape(h, w, 3),
        "elements": out["elements"].T.reshape(-1, h, w),
        "trust": out["trust"].reshape(h, w),
    }


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports: held open together while the kernel picks them (one
    at a time, a port closed can come back at once: a daemon once got the same port twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


class PortTaken(RuntimeError):
    """The daemon could not bind a port picked for it."""


class Daemon:
    """`python -m edge serve` in a subprocess on free loopback ports."""

    def __init__(self, models: Path, recordings: Path, *extra: str, log: Path | None = None):
        self._pick_ports()
        self.models, self.recordings, self.extra = models, recordings, extra
        self.log = log or recordings.parent / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def _pick_ports(self) -> None:
        self.ingest, self.previews, self.snapshot = (f"tcp://127.0.0.1:{p}"
                                                     for p in free_ports(3))

    def start(self, timeout_s: float = 20.0, tries: int = 3) -> Daemon:
        """Start it; on a port another process took since they were picked, on new ones."""
        for _ in range(tries - 1):
            try:
                return self._start(timeout_s)
            except PortTaken:
                self._pick_ports()
        return self._start(timeout_s)

    def _start(self, timeout_s: float) -> Daemon:
        cmd = [sys.executable, "-m", "edge", "serve", "--ingest", self.ingest,
               "--previews", self.previews, "--snapshot", self.snapshot,
               "--models", str(self.models), "--recordings", str(self.recordings),
               "--rate-hz", "20", "--flush-every-s", "0.2", *self.extra]
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        start = self.log.stat().st_size if self.log.exists() else 0
        self._logf = open(self.log, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._logf.close()
                text = self.log.read_bytes()[start:].decode(errors="replace")[-3000:]
                raise (PortTaken if "cannot bind" in text else RuntimeError)(
                    f"daemon exited: {text}")
            try:
                self.status(timeout_s=0.5)
                return self
            except TimeoutError:
                continue
        self.stop()
        raise RuntimeError(f"daemon did not answer in {timeout_s} s: {self.log.read_text()}")

    def status(self, timeout_s: float = 5.0) -> wire.Status:
        from edge.watch import request

        return request(self.snapshot, wire.SnapshotRequest(topics=()), timeout_s).status

    def wait(self, predicate, timeout_s: float = 30.0, what: str = "condition") -> wire.Status:
        deadline = time.monotonic() + timeout_s
        while True:
            s = self.status()
            if predicate(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; status: {s}")
            time.sleep(0.05)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        if getattr(self, "_logf", None):
            self._logf.close()
