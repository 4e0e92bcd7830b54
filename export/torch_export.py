"""torch nn.Module (counts/s in, final units out) -> ONNX graph in the bundle contract.

Uses the TorchScript exporter (`dynamo=False`): torch 2.13's default dynamo
exporter needs `onnxscript`, which the pinned environment does not carry, and
these feed-forward models trace exactly. Batch is a dynamic axis.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from export.graph import OPSET, check_contract
from proto.bundle import INPUT_NAME


def torch_to_onnx(module: nn.Module, channels: int, output_name: str,
                  opset: int = OPSET) -> onnx.ModelProto:
    """Trace `module` on (2, channels) float32 and return the checked ONNX model."""
    module = module.eval()
    example = torch.from_numpy(
        np.random.default_rng(0).gamma(1.0, 5.0, (2, channels)).astype(np.float32))
    with torch.no_grad():
        y = module(example)
    if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.shape[0] != 2:
        raise ValueError(f"{type(module).__name__} must return one (N, K) tensor, got "
                         f"{getattr(y, 'shape', type(y))}")
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy-exporter notice
        torch.onnx.export(
            module, (example,), buf, input_names=[INPUT_NAME], output_names=[output_name],
            dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    model = onnx.load_from_string(buf.getvalue())
    check_contract(model, channels, output_name, int(y.shape[1]))
    return model


def autoencoder_parts(pre: nn.Module, ae: nn.Module) -> tuple[nn.Module, nn.Module]:
    """An AutoEncoder (+ its preprocessing module) -> (rgb module, trust module):
    the encoder maps counts/s to RGB, the reconstruction error is the trust score."""
    from training.models import EncoderOnly, Model, TrustScore

    rgb = Model(pre, EncoderOnly(ae), np.ones(3, np.float32), np.zeros(3, np.float32))
    return rgb.eval(), TrustScore(pre, ae).eval()
