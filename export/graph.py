"""ONNX graph surgery shared by the exporters: preprocessing ops, I/O renaming, checks.

The preprocessing every model uses (training.preprocess) is
    features = (sqrt(max(x, 0)) - mean) * (1 / scale)
as float32 ops Relu -> Sqrt -> Sub -> Mul, the same order and precision as the
numpy version, so a scikit-learn graph with these ops in front sees exactly the
features it was fitted on.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from proto.bundle import INPUT_NAME, KINDS

OUTPUT_NAMES = {kind: kind for kind in KINDS}  # each bundle's graph output is named its kind
OPSET = 17
IR_VERSION = 8  # loadable by every onnxruntime >= 1.10
MAX_BYTES = 20 * 1024 * 1024


def preprocess_nodes(mean: np.ndarray, scale: np.ndarray, source: str, target: str,
                     prefix: str = "pre_") -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """Nodes + initializers computing `target` features from `source` counts/s."""
    mean = np.asarray(mean, np.float32).reshape(1, -1)
    inv = (np.float32(1.0) / np.asarray(scale, np.float32)).reshape(1, -1)
    init = [numpy_helper.from_array(mean, f"{prefix}mean"),
            numpy_helper.from_array(inv.astype(np.float32), f"{prefix}inv_scale")]
    nodes = [
        helper.make_node("Relu", [source], [f"{prefix}pos"], name=f"{prefix}relu"),
        helper.make_node("Sqrt", [f"{prefix}pos"], [f"{prefix}root"], name=f"{prefix}sqrt"),
        helper.make_node("Sub", [f"{prefix}root", f"{prefix}mean"], [f"{prefix}centred"],
                         name=f"{prefix}sub"),
        helper.make_node("Mul", [f"{prefix}centred", f"{prefix}inv_scale"], [target],
                         name=f"{prefix}mul"),
    ]
    return nodes, init


def contract_io(model: onnx.ModelProto, channels: int, output_name: str, width: int,
                *, pre: tuple[np.ndarray, np.ndarray] | None = None) -> onnx.ModelProto:
    """Rewrite a one-input one-output graph into the bundle contract, in place.

    Input becomes "spectra" float32 [batch, channels] (with the preprocessing ops
    prepended when `pre` = (mean, scale) is given, and a Cast when the graph wants
    doubles); output becomes `output_name` float32 [batch, width] (Reshape + Cast
    as needed).
    """
    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(g.input)}/{len(g.output)}")
    old_in, old_out = g.input[0], g.output[0]
    in_type = old_in.type.tensor_type.elem_type
    out_type = old_out.type.tensor_type.elem_type
    head: list[onnx.NodeProto] = []
    src = INPUT_NAME
    if pre is not None:
        nodes, init = preprocess_nodes(pre[0], pre[1], src, "pre_features")
        head += nodes
        g.initializer.extend(init)
        src = "pre_features"
    if in_type == TensorProto.DOUBLE:
        head.append(helper.make_node("Cast", [src], ["in_double"], to=TensorProto.DOUBLE,
                                     name="in_cast"))
        src = "in_double"
    elif in_type != TensorProto.FLOAT:
        raise ValueError(f"graph input type {in_type} is neither float nor double")
    head.append(helper.make_node("Identity", [src], [old_in.name], name="in_identity"))
    tail = [helper.make_node("Reshape", [old_out.name, "out_shape"], ["out_reshaped"],
                             name="out_reshape")]
    g.initializer.append(numpy_helper.from_array(np.array([-1, width], np.int64), "out_shape"))
    if out_type != TensorProto.FLOAT:
        tail.append(helper.make_node("Cast", ["out_reshaped"], [output_name],
                                     to=TensorProto.FLOAT, name="out_cast"))
    else:
        tail.append(helper.make_node("Identity", ["out_reshaped"], [output_name],
                                     name="out_identity"))
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                 ["batch", channels]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                                  ["batch", width]))
    return model


def finalize(model: onnx.ModelProto) -> bytes:
    """Deduplicate opset imports, pin the IR version, check, serialise."""
    seen: dict[str, int] = {}
    for op in model.opset_import:
        seen[op.domain] = max(seen.get(op.domain, 0), op.version)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(seen.items()))
    if seen.get("", 0) <= OPSET:  # IR 8 carries opset <= 17: older runtimes load it too
        model.ir_version = IR_VERSION
    model.producer_name = "maxrf-edge export"
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    if len(data) > MAX_BYTES:
        raise ValueError(f"graph is {len(data) / 2**20:.1f} MiB, over the "
                         f"{MAX_BYTES / 2**20:.0f} MiB bundle limit")
    return data


def stamp(model: onnx.ModelProto, kind: str, grid: dict, outputs, units: str) -> None:
    """Write the I/O contract into the graph's own metadata (proto.bundle.META_*), so the
    edge can also catch a manifest whose grid offset or gain was changed (the input
    shape only shows the channel count). Covered by the sha256 like the rest."""
    from proto.bundle import META_GRID, META_KIND, META_OUTPUTS, META_UNITS

    values = {META_KIND: kind, META_GRID: json.dumps(grid, sort_keys=True),
              META_OUTPUTS: json.dumps(list(outputs)), META_UNITS: units}
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in kept}, **values})


def default_opset(model: onnx.ModelProto) -> int:
    return max((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
               default=0)


def check_contract(model: onnx.ModelProto, channels: int, output_name: str, width: int,
                   extra_inputs: tuple[str, ...] = ()) -> None:
    """Export-side twin of edge.models.check_io (with onnx rather than a runtime); the
    `extra_inputs` (proto.bundle.EXTRA_INPUTS) follow `spectra`, checked at the edge."""

    def dims(v) -> list:
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    g = model.graph
    ins = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    if [i.name for i in ins] != [INPUT_NAME, *extra_inputs]:
        raise ValueError(f"graph inputs {[i.name for i in ins]}, want "
                         f"{[INPUT_NAME, *extra_inputs]}")
    if [o.name for o in g.output] != [output_name]:
        raise ValueError(f"graph outputs {[o.name for o in g.output]}, want [{output_name!r}]")
    x, y = ins[0], g.output[0]
    for v in (x, y):
        if v.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise ValueError(f"{v.name} is not float32")
    dx, dy = dims(x), dims(y)
    if len(dx) != 2 or not isinstance(dx[0], str) or dx[1] != channels:
        raise ValueError(f"input shape {dx}, want [batch, {channels}]")
    if len(dy) != 2 or not isinstance(dy[0], str) or dy[1] != width:
        raise ValueError(f"output shape {dy}, want [batch, {width}]")
