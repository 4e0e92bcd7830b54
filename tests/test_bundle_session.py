"""edge.models.ModelSession: runs verified bundles, refuses graphs that disagree with
their manifest, and imports with neither torch nor onnx."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from edge.models import ModelSession
from export.tiny import (
    TINY_GRID,
    tiny_graph,
    tiny_manifest_fields,
    tiny_reference,
    write_tiny_bundles,
)
from proto.bundle import BundleError, write_bundle
from proto.energy import EnergyGrid

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_bundles(tmp_path_factory.mktemp("models"))


def spectra(n: int, d: int = TINY_GRID.channels) -> np.ndarray:
    return np.random.default_rng(0).gamma(1.0, 5.0, (n, d)).astype(np.float32)


@pytest.mark.parametrize("kind", ["rgb", "elements", "trust"])
def test_tiny_bundles_run(tiny, kind) -> None:
    s = ModelSession(tiny[kind], threads=1)
    x = spectra(33)
    y = s.run(x)
    assert s.manifest.kind == kind and y.dtype == np.float32
    assert y.shape == (33, len(s.manifest.outputs))
    np.testing.assert_allclose(y, tiny_reference(kind, TINY_GRID, x), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(s.run(x.astype(np.float64)[:, :]), y, rtol=1e-6)  # converted
    np.testing.assert_allclose(s.run(np.asfortranarray(x)), y, rtol=1e-6)
    assert s.run(x[:0]).shape == (0, len(s.manifest.outputs))
    with pytest.raises(ValueError, match=f"needs \\(N, {TINY_GRID.channels}\\)"):
        s.run(x[:, :100])


def test_tiny_element_map_is_a_window_sum(tiny) -> None:
    x = np.zeros((1, TINY_GRID.channels), np.float32)
    x[0, round(TINY_GRID.channel(6.40))] = 50.0  # Fe K alpha
    y = ModelSession(tiny["elements"]).run(x)[0]
    assert y[2] == pytest.approx(50.0) and y.sum() == pytest.approx(50.0)


def write_mismatch(tmp_path, graph_grid: EnergyGrid, kind: str = "elements", **changes):
    """A bundle whose graph is built for graph_grid but whose manifest says otherwise."""
    fields = {**tiny_manifest_fields(kind, TINY_GRID), **changes}
    return write_bundle(tmp_path / "bad", tiny_graph(kind, graph_grid).SerializeToString(),
                        fields).folder


def test_grid_disagreeing_with_graph_is_refused(tmp_path) -> None:
    folder = write_mismatch(tmp_path, EnergyGrid(0.01, 0.04, 512))
    with pytest.raises(BundleError, match="has 512 channels, manifest grid has 1024") as e:
        ModelSession(folder)
    assert str(folder) in str(e.value)


def test_output_count_disagreeing_is_refused(tmp_path) -> None:
    folder = write_mismatch(tmp_path, TINY_GRID, outputs=["Fe", "Pb"])
    with pytest.raises(BundleError, match="manifest lists 2 outputs"):
        ModelSession(folder)


def test_output_name_disagreeing_is_refused(tmp_path) -> None:
    folder = write_mismatch(tmp_path, TINY_GRID, output_name="maps")
    with pytest.raises(BundleError, match="graph output is 'elements', manifest says 'maps'"):
        ModelSession(folder)


def io_graph(x_shape, x_type=TensorProto.FLOAT, x_name="spectra") -> bytes:
    g = helper.make_graph(
        [helper.make_node("Identity", [x_name], ["y"])], "g",
        [helper.make_tensor_value_info(x_name, x_type, x_shape)],
        [helper.make_tensor_value_info("y", x_type, x_shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


@pytest.mark.parametrize("blob, reason", [
    (io_graph([4, 3]), "fixed batch of 4"),
    (io_graph(["batch", 3], TensorProto.DOUBLE), "is tensor\\(double\\)"),
    (io_graph(["batch", 3], x_name="x"), "graph input is 'x'"),
    (io_graph(["batch", 3, 1]), "needs \\[batch, channels\\]"),
    (b"\x08\x07garbage", "ONNX Runtime cannot load"),
])
def test_graph_io_problems_are_refused(tmp_path, blob, reason) -> None:
    fields = {"kind": "rgb", "grid": EnergyGrid(0.0, 1.0, 3), "output_name": "y",
              "outputs": ["R", "G", "B"], "units": "sRGB 0..1", "opset": 17}
    folder = write_bundle(tmp_path / "b", blob, fields).folder
    with pytest.raises(BundleError, match=reason):
        ModelSession(folder)


def test_tampered_bundle_is_refused_by_the_session(tmp_path) -> None:
    folder = write_tiny_bundles(tmp_path)["rgb"]
    blob = bytearray((folder / "model.onnx").read_bytes())
    blob[-5] ^= 1
    (folder / "model.onnx").write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="sha256"):
        ModelSession(folder)


def test_edge_models_runs_without_torch_or_onnx(tiny) -> None:
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'onnx', 'sklearn', 'skl2onnx', 'training',"
        " 'export'}:\n"
        "            raise ImportError(name + ' blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from edge.models import ModelSession\n"
        f"s = ModelSession({str(tiny['trust'])!r})\n"
        "print(s.run(np.ones((2, s.manifest.grid.channels), np.float32)).shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(2, 1)"


def test_grid_offset_or_gain_disagreeing_with_graph_metadata_is_refused(tmp_path) -> None:
    """Same channel count, another calibration: only the graph's own metadata can tell."""
    shifted = EnergyGrid(0.0, 0.02, TINY_GRID.channels)
    folder = write_bundle(tmp_path / "b", tiny_graph("elements", TINY_GRID).SerializeToString(),
                          tiny_manifest_fields("elements", shifted)).folder
    with pytest.raises(BundleError, match=r"graph was exported for grid .*'offset': 0.01"):
        ModelSession(folder)


def test_output_names_disagreeing_with_graph_metadata_are_refused(tmp_path) -> None:
    renamed = ["Ca", "Mn", "Fe", "Cu", "As", "Au", "Hg", "Zn"]
    folder = write_mismatch(tmp_path, TINY_GRID, outputs=renamed)
    with pytest.raises(BundleError, match=r"graph outputs are .*'Pb'.* manifest says .*'Zn'"):
        ModelSession(folder)
