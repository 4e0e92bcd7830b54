"""One verified ONNX Runtime session per model bundle (numpy + onnxruntime only).

`ModelSession(folder)` loads the bundle through `proto.bundle.load_bundle`
(schema + sha256), builds the session from the very bytes that were hashed,
then checks the graph's declared input and output against the manifest with
ONNX Runtime's own metadata (no `onnx` import at the edge): one float32 input
named manifest.input_name of shape [batch, grid.channels] with a free batch
axis (plus float32 [batch, 1] for each of manifest.extra_inputs), one float32
output named manifest.output_name of shape [batch, len(outputs)], and, where
the graph carries them, its own maxrf.* metadata (kind, grid offset/gain/channels,
output names) equal to the manifest's. Any disagreement is a BundleError naming
the folder and reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from proto.bundle import (
    CONTINUUM_INPUT,
    IN_DOMAIN_INPUT,
    LIVE_TIME_INPUT,
    Bundle,
    BundleError,
    Manifest,
    check_graph_metadata,
    load_bundle,
)
from proto.energy_axis import AxisCheck, NetFn, load_check
from proto.messages import MAX_ELEMENTS, MAX_ID

FLOAT = "tensor(float)"


def session_options(threads: int = 2, spinning: bool = False) -> ort.SessionOptions:
    """CPU options for a box shared with ingest: a fixed small pool, no busy-waiting
    (spinning threads would steal the cores the receiver needs between batches)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    return so


def _dim_is_free(d) -> bool:
    """ORT reports a symbolic or unknown dimension as a str or None."""
    return d is None or isinstance(d, str)


def check_io(session: ort.InferenceSession, manifest: Manifest) -> None:
    """Raise BundleError (reason only, no folder) if the graph I/O disagrees with the manifest."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names, want = [i.name for i in inputs], [manifest.input_name, *manifest.extra_inputs]
    if len(names) == len(want) == 1 and names != want:
        raise BundleError(f"graph input is {names[0]!r}, manifest says {want[0]!r}")
    if sorted(names) != sorted(want):
        raise BundleError(f"graph has inputs {names}, the manifest declares {want}")
    for extra in (i for i in inputs if i.name in manifest.extra_inputs):
        if extra.name == CONTINUUM_INPUT:
            if extra.type != FLOAT or list(extra.shape) != [2, manifest.grid.channels]:
                raise BundleError(f"graph input {extra.name!r} is {extra.type} {extra.shape}, "
                                  f"needs {FLOAT} [2, {manifest.grid.channels}]")
        elif extra.type != FLOAT or len(extra.shape) != 2 or not _dim_is_free(extra.shape[0]) \
                or extra.shape[1] != 1:
            raise BundleError(f"graph input {extra.name!r} is {extra.type} {extra.shape}, "
                              f"needs {FLOAT} [batch, 1]")
    x = next(i for i in inputs if i.name == manifest.input_name)
    if x.name != manifest.input_name:
        raise BundleError(f"graph input is {x.name!r}, manifest says {manifest.input_name!r}")
    if x.type != FLOAT:
        raise BundleError(f"graph input {x.name!r} is {x.type}, needs {FLOAT}")
    if len(x.shape) != 2:
        raise BundleError(f"graph input {x.name!r} has shape {x.shape}, needs [batch, channels]")
    if not _dim_is_free(x.shape[0]):
        raise BundleError(f"graph input {x.name!r} has a fixed batch of {x.shape[0]}")
    if x.shape[1] != manifest.grid.channels:
        raise BundleError(
            f"graph input {x.name!r} has {x.shape[1]} channels, manifest grid has "
            f"{manifest.grid.channels}"
        )
    if len(outputs) != 1:
        raise BundleError(
            f"graph has {len(outputs)} outputs {[o.name for o in outputs]}, needs 1"
        )
    y = outputs[0]
    if y.name != manifest.output_name:
        raise BundleError(f"graph output is {y.name!r}, manifest says {manifest.output_name!r}")
    if y.type != FLOAT:
        raise BundleError(f"graph output {y.name!r} is {y.type}, needs {FLOAT}")
    k = len(manifest.outputs)
    if len(y.shape) != 2 or y.shape[1] != k:
        raise BundleError(
            f"graph output {y.name!r} has shape {y.shape}, manifest lists {k} outputs "
            f"{list(manifest.outputs)} (needs [batch, {k}])"
        )
    check_graph_metadata(manifest, session.get_modelmeta().custom_metadata_map)


def check_servable(manifest: Manifest) -> None:
    """Raise BundleError (reason only) for outputs no preview can carry (SPEC.md 4.4, 6):
    at most 64 element maps, every name at most 256 characters. Refused at load, so a
    daemon never serves a model whose previews it could not publish."""
    outs = manifest.outputs
    if manifest.kind == "elements" and len(outs) > MAX_ELEMENTS:
        raise BundleError(f"elements bundle has {len(outs)} outputs; a preview carries at "
                          f"most {MAX_ELEMENTS} element maps (SPEC.md 6)")
    for name in outs:
        if len(name) > MAX_ID:
            raise BundleError(f"output name {name[:32]!r}... has {len(name)} characters; a "
                              f"preview's names have at most {MAX_ID}")


def axis_runtime(data: bytes) -> NetFn:
    """An elements bundle's axis.onnx (proto.energy_axis) on one thread: run once a scan."""
    return ort.InferenceSession(data, sess_options=session_options(1),
                                providers=["CPUExecutionProvider"]).run


class ModelSession:
    """A bundle ready to run: `.manifest`, `.run(x (N, D) float32) -> (N, K) float32`;
    a bundle that declares extra inputs (proto.bundle.EXTRA_INPUTS) takes them as keywords."""

    def __init__(self, folder: str | Path, threads: int = 2, spinning: bool = False) -> None:
        self.bundle: Bundle = load_bundle(folder)
        self.manifest: Manifest = self.bundle.manifest
        self.folder = self.bundle.folder
        try:
            self._session = ort.InferenceSession(
                self.bundle.model_bytes, sess_options=session_options(threads, spinning),
                providers=["CPUExecutionProvider"],
            )
        except Exception as e:  # ORT raises its own types for unparsable or invalid graphs
            raise BundleError(f"{self.folder}: ONNX Runtime cannot load model.onnx ({e})") from e
        try:
            check_servable(self.manifest)
            check_io(self._session, self.manifest)
            # an elements bundle's check of each stream's energy axis (proto.energy_axis)
            self.axis: AxisCheck | None = load_check(self.bundle, axis_runtime)
        except BundleError as e:
            raise BundleError(f"{self.folder}: {e}") from None
        self.channels = self.manifest.grid.channels
        self.width = len(self.manifest.outputs)
        self._in = self.manifest.input_name
        self._out = [self.manifest.output_name]
        self._x = np.empty((0, self.channels), dtype=np.float32)  # grown on demand
        self._no_continuum = np.zeros((2, self.channels), np.float32)

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def _input(self, x: np.ndarray) -> np.ndarray:
        """x as C-contiguous float32 (N, D), converting into a reused buffer if needed."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(
                f"{self.kind} model needs (N, {self.channels}) counts/s, got {x.shape}"
            )
        if x.dtype == np.float32 and x.flags.c_contiguous:
            return x
        if self._x.shape[0] < x.shape[0]:
            self._x = np.empty((x.shape[0], self.channels), dtype=np.float32)
        buf = self._x[: x.shape[0]]
        np.copyto(buf, x, casting="same_kind")
        return buf

    @property
    def extra_inputs(self) -> tuple[str, ...]:
        return self.manifest.extra_inputs

    def run(self, x: np.ndarray, live_time_s: np.ndarray | None = None,
            in_domain: np.ndarray | None = None, continuum: np.ndarray | None = None
            ) -> np.ndarray:
        """(N, D) counts per live second on manifest.grid -> float32 (N, K). `live_time_s`
        (N,) s, `in_domain` (N,) bool and `continuum` (2, D) are fed where the bundle declares
        them (BUNDLE.md); in_domain defaults to inside (a bundle without a domain test has no
        outside), continuum to none (each pixel's own background)."""
        x = self._input(x)
        if x.shape[0] == 0:
            return np.empty((0, self.width), dtype=np.float32)
        feed = {self._in: x}
        if LIVE_TIME_INPUT in self.extra_inputs:
            if live_time_s is None:
                raise ValueError(f"{self.kind} model needs the live time of each spectrum")
            feed[LIVE_TIME_INPUT] = np.asarray(live_time_s, np.float32).reshape(-1, 1)
        if IN_DOMAIN_INPUT in self.extra_inputs:
            feed[IN_DOMAIN_INPUT] = (np.ones((len(x), 1), np.float32) if in_domain is None
                                     else np.asarray(in_domain, np.float32).reshape(-1, 1))
        if CONTINUUM_INPUT in self.extra_inputs:
            feed[CONTINUUM_INPUT] = (self._no_continuum if continuum is None
                                     else np.asarray(continuum, np.float32))
        (y,) = self._session.run(self._out, feed)
        return y

    def __repr__(self) -> str:
        m = self.manifest
        return f"ModelSession({str(self.folder)!r}, kind={m.kind}, outputs={list(m.outputs)})"
