"""Tiny deterministic bundles for tests, built with onnx.helper (no torch, no training).

    write_tiny_bundles(folder, grid=TINY_GRID) -> dict[str, Path]
        writes <folder>/rgb, <folder>/elements, <folder>/trust (each model.onnx +
        manifest.json, a few KiB .. ~100 KiB) and returns {kind: bundle folder}.
    tiny_graph(kind, grid) -> onnx.ModelProto      (the graph alone)
    tiny_reference(kind, grid, x) -> np.ndarray    (numpy twin of the graph, for asserts)

The graphs compute something a test can check by hand, in the bundle contract
(input "spectra" float32 [batch, channels] in counts per live second):

* elements: net-free region-of-interest sums: for each element in
  proto.elements.ELEMENTS, the counts/s in a +-0.15 keV window around its main
  line (0 where the line is off the grid) -> [batch, 8] counts/s;
* rgb: sigmoid of three broad-band sqrt-rate sums, centred on a mid grey
  -> [batch, 3] in 0..1;
* trust: mean over channels of sqrt(max(x, 0))**2 / (1 + mean) -- any
  non-negative score that grows with the spectrum; [batch, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.graph import OUTPUT_NAMES, stamp
from proto.bundle import KINDS, Bundle, write_bundle
from proto.domain import Subspace
from proto.elements import ELEMENTS, MAP_UNITS
from proto.energy import EnergyGrid

TINY_GRID = EnergyGrid(0.01, 0.02, 1024)  # same as training.preprocess.MODEL_GRID
OPSET = 17
# main line (keV) of each element's map group (K alpha, or L alpha / L beta for Pb,
# whose L alpha sits on As K alpha)
LINES_KEV = {"Ca": 3.69, "Mn": 5.90, "Fe": 6.40, "Cu": 8.05, "As": 10.54,
             "Au": 9.71, "Hg": 9.99, "Pb": 12.61}
WINDOW_KEV = 0.15
BANDS_KEV = ((1.0, 5.0), (5.0, 9.0), (9.0, 14.0))  # -> R, G, B


def _windows(grid: EnergyGrid) -> np.ndarray:
    """(D, 8) 0/1 matrix selecting each element's window."""
    e = grid.centres()
    w = np.zeros((grid.channels, len(ELEMENTS)), dtype=np.float32)
    for j, el in enumerate(ELEMENTS):
        w[np.abs(e - LINES_KEV[el]) <= WINDOW_KEV, j] = 1.0
    return w


def _bands(grid: EnergyGrid) -> np.ndarray:
    """(D, 3) band-averaging matrix for rgb."""
    e = grid.centres()
    w = np.zeros((grid.channels, 3), dtype=np.float32)
    for j, (lo, hi) in enumerate(BANDS_KEV):
        sel = (e >= lo) & (e < hi)
        w[sel, j] = 1.0 / max(1, int(sel.sum()))
    return w


def tiny_reference(kind: str, grid: EnergyGrid, x: np.ndarray) -> np.ndarray:
    """What `tiny_graph(kind, grid)` computes, in numpy (float64 then float32)."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "elements":
        return (x @ _windows(grid)).astype(np.float32)
    root = np.sqrt(np.maximum(x, 0.0))
    if kind == "rgb":
        z = root @ _bands(grid) - 1.0
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    if kind == "trust":
        m = root.mean(axis=1, keepdims=True)
        return ((root**2).mean(axis=1, keepdims=True) / (1.0 + m)).astype(np.float32)
    raise ValueError(f"unknown kind {kind!r}")


def tiny_graph(kind: str, grid: EnergyGrid = TINY_GRID) -> onnx.ModelProto:
    """A small graph in the bundle contract for `kind` on `grid`."""
    d = grid.channels
    out = OUTPUT_NAMES[kind]
    init: list[TensorProto] = []
    if kind == "elements":
        init.append(numpy_helper.from_array(_windows(grid), "windows"))
        nodes = [helper.make_node("MatMul", ["spectra", "windows"], [out])]
        k = len(ELEMENTS)
    elif kind == "rgb":
        init += [numpy_helper.from_array(_bands(grid), "bands"),
                 numpy_helper.from_array(np.array([1.0], np.float32), "one")]
        nodes = [
            helper.make_node("Relu", ["spectra"], ["pos"]),
            helper.make_node("Sqrt", ["pos"], ["root"]),
            helper.make_node("MatMul", ["root", "bands"], ["band"]),
            helper.make_node("Sub", ["band", "one"], ["z"]),
            helper.make_node("Sigmoid", ["z"], [out]),
        ]
        k = 3
    elif kind == "trust":
        init.append(numpy_helper.from_array(np.array([1.0], np.float32), "one"))
        nodes = [  # opset 17: ReduceMean takes axes as an attribute
            helper.make_node("Relu", ["spectra"], ["pos"]),
            helper.make_node("Sqrt", ["pos"], ["root"]),
            helper.make_node("ReduceMean", ["root"], ["m"], axes=[1], keepdims=1),
            helper.make_node("ReduceMean", ["pos"], ["sq"], axes=[1], keepdims=1),
            helper.make_node("Add", ["m", "one"], ["den"]),
            helper.make_node("Div", ["sq", "den"], [out]),
        ]
        k = 1
    else:
        raise ValueError(f"unknown kind {kind!r}")
    graph = helper.make_graph(
        nodes, f"tiny_{kind}",
        [helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["batch", d])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", k])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="maxrf-edge export.tiny")
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    m = tiny_manifest_fields(kind, grid)
    stamp(model, kind, grid.to_dict(), m["outputs"], m["units"])
    onnx.checker.check_model(model, full_check=True)
    return model


def tiny_manifest_fields(kind: str, grid: EnergyGrid = TINY_GRID) -> dict:
    outputs = {"rgb": ["R", "G", "B"], "elements": list(ELEMENTS),
               "trust": ["reconstruction_error"]}[kind]
    units = {"rgb": "sRGB 0..1", "elements": MAP_UNITS, "trust": "score (tiny, arbitrary)"}[kind]
    return {"kind": kind, "grid": grid, "output_name": OUTPUT_NAMES[kind], "outputs": outputs,
            "units": units, "opset": OPSET,
            "training": {"data": "none", "model": f"export.tiny.{kind}"},
            "metrics": {}}


def write_tiny_bundle(folder: str | Path, kind: str, grid: EnergyGrid = TINY_GRID,
                      instruments: Sequence[dict] = (), domain: dict | None = None,
                      subspace: Subspace | None = None) -> Bundle:
    """One tiny bundle; `instruments` (identity maps), `domain` and `subspace` state what a
    test wants it to have been trained for (proto/BUNDLE.md), else nothing is stated."""
    model = tiny_graph(kind, grid)
    fields = tiny_manifest_fields(kind, grid) | {"instruments": list(instruments),
                                                 "domain": dict(domain or {})}
    return write_bundle(folder, model.SerializeToString(), fields, subspace)


def write_tiny_bundles(folder: str | Path, grid: EnergyGrid = TINY_GRID,
                       **stated) -> dict[str, Path]:
    """rgb/, elements/, trust/ under `folder`; returns {kind: bundle folder}. `stated`:
    instruments, domain, subspace for every one (write_tiny_bundle)."""
    folder = Path(folder)
    return {kind: write_tiny_bundle(folder / kind, kind, grid, **stated).folder
            for kind in KINDS}
