"""Trained model -> checked bundle: convert, prove parity, then write.

Nothing is written unless ONNX Runtime agrees with the framework on held-out
spectra (export.parity), so a bundle on disk always carries its parity figure
in manifest.metrics["parity"].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from torch import nn

from export import domain, parity
from export.graph import OUTPUT_NAMES, check_contract, default_opset, finalize, stamp
from proto.bundle import Bundle, write_bundle
from proto.energy import EnergyGrid


def is_torch(model) -> bool:
    return isinstance(model, nn.Module)


def convert(model, info: dict) -> tuple[onnx.ModelProto, str]:
    """-> (ONNX model in the bundle contract, output name)."""
    grid = EnergyGrid.from_dict(info["grid"])
    out_name = OUTPUT_NAMES[info["kind"]]
    width = len(info["outputs"])
    if is_torch(model):
        from export.torch_export import torch_to_onnx

        onx = torch_to_onnx(model, grid.channels, out_name)
    else:
        from export.sklearn_export import sklearn_to_onnx

        onx = sklearn_to_onnx(model, info["preprocess"], out_name, width)
    check_contract(onx, grid.channels, out_name, width)
    return onx, out_name


def reference(model, info: dict, x: np.ndarray) -> np.ndarray:
    """The framework's own answer on counts/s `x`, (N, K): what parity holds ONNX to."""
    if is_torch(model):
        from training.loop import predict  # the one way training runs a torch model

        return predict(model, x)
    from export.sklearn_export import sklearn_predict

    return sklearn_predict(model, info["preprocess"], x)


def manifest_fields(info: dict, model, out_name: str, opset: int, p: parity.Parity,
                    name: str) -> dict:
    training = {
        "artifact": name,
        "framework": "torch" if is_torch(model) else "sklearn",
        "model": info.get("model") or type(model).__name__,
        "data": info.get("train_data", {}),
    }
    if "config" in info:
        training["config"] = info["config"]
    return {
        "kind": info["kind"], "grid": info["grid"], "output_name": out_name,
        "outputs": list(info["outputs"]), "units": info["units"], "opset": opset,
        "training": training, "metrics": {**info.get("metrics", {}), "parity": p.to_dict()},
    }


def export_model(model, info: dict, folder: str | Path, x: np.ndarray, source: str,
                 name: str = "", data: str | Path | None = None) -> tuple[Bundle, parity.Parity]:
    """Convert `model`, check parity on held-out counts/s `x`, write the bundle to `folder`.
    With `data` (the scenes folder), the manifest also states the instruments the model was
    trained for and its training domain, with the in-domain subspace (export.domain)."""
    onx, out_name = convert(model, info)
    stamp(onx, info["kind"], info["grid"], info["outputs"], info["units"])
    onnx_bytes = finalize(onx)
    p = parity.check(onnx_bytes, reference(model, info, x), x, info["outputs"], source)
    fields = manifest_fields(info, model, out_name, default_opset(onx), p, name)
    subspace = None
    if data is not None:
        stated, subspace = domain.describe(info, data, lambda s: reference(model, info, s))
        fields.update(stated)
    return write_bundle(folder, onnx_bytes, fields, subspace), p
