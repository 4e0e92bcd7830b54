"""The models of the study and ours: scikit-learn baselines and torch networks.

Every torch model here is a `Model`: preprocessing (training.preprocess) ->
body -> affine output scaling, so it takes counts per live second and returns
final units (sRGB 0..1, element counts/s, or a trust score). That is what
training.artifacts saves and export turns into one ONNX graph.

Checkpoints hold weights, never code: every torch class here is in MODEL_CLASSES and says
how to rebuild itself untrained, `arch()` (plain constructor arguments, submodules nested
as {"class", "args"}) and `from_arch(**args)`; `build(model_args(m))` is `m`'s architecture,
and its state_dict fills in the weights and buffers (nanoGPT's model_args idea).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
import torch
from sklearn.linear_model import Lasso
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import SVR
from torch import nn

from training.preprocess import Preprocess, PreprocessModule

T = TypeVar("T", bound=type[nn.Module])
MODEL_CLASSES: dict[str, type[nn.Module]] = {}


def register(cls: T) -> T:
    """Add a module class to MODEL_CLASSES, the only classes a checkpoint may name."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_args(module: nn.Module) -> dict[str, Any]:
    """{"class": name, "args": plain constructor arguments}: what `build` needs to make an
    untrained `module` of the same shape."""
    name = type(module).__name__
    if MODEL_CLASSES.get(name) is not type(module):
        raise TypeError(f"{name} is not in training.models.MODEL_CLASSES, so it cannot be "
                        "saved as a weights-only checkpoint")
    return {"class": name, "args": module.arch()}


def build(spec: dict[str, Any]) -> nn.Module:
    """The untrained module `spec` (from model_args) describes."""
    cls = MODEL_CLASSES.get(spec.get("class"))
    if cls is None:
        raise ValueError(f"unknown model class {spec.get('class')!r} "
                         f"(known: {', '.join(sorted(MODEL_CLASSES))})")
    return cls.from_arch(**spec["args"])


register(PreprocessModule)

# ----------------------------------------------------------------- baselines


def lasso(alpha: float = 0.01) -> Lasso:
    return Lasso(alpha=alpha, max_iter=5000, random_state=0)


def knn(k: int = 10) -> KNeighborsRegressor:
    """The study's best regression: k = 10, Euclidean distance, uniform weights."""
    return KNeighborsRegressor(n_neighbors=k, metric="euclidean", n_jobs=1)


def svr(c: float = 1.0) -> MultiOutputRegressor:
    return MultiOutputRegressor(SVR(C=c, epsilon=0.02, gamma="scale"))


# ------------------------------------------------------------ torch modules


@register
class Stack(nn.Sequential):
    """Linear + ReLU layers between consecutive sizes (no ReLU after the last unless asked)."""

    def __init__(self, sizes: list[int], last_relu: bool = False, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2 or last_relu:
                layers.append(nn.ReLU())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.sizes, self.last_relu, self.dropout = [int(n) for n in sizes], last_relu, dropout

    def arch(self) -> dict:
        return {"sizes": self.sizes, "last_relu": self.last_relu, "dropout": self.dropout}

    @classmethod
    def from_arch(cls, **args: Any) -> Stack:
        return cls(**args)



@register
class Model(nn.Module):
    """counts/s -> preprocess -> body -> out * scale + offset (final units)."""

    def __init__(self, pre: PreprocessModule, body: nn.Module, out_scale: np.ndarray,
                 out_offset: np.ndarray, squash: bool = False) -> None:
        super().__init__()
        self.pre, self.body, self.squash = pre, body, squash
        self.register_buffer("out_scale", torch.as_tensor(np.asarray(out_scale, np.float32)))
        self.register_buffer("out_offset", torch.as_tensor(np.asarray(out_offset, np.float32)))

    def raw(self, features: torch.Tensor) -> torch.Tensor:
        """Body output in training units (standardised targets), from features."""
        y = self.body(features)
        return torch.sigmoid(y) if self.squash else y

    def scaled(self, rates: torch.Tensor) -> torch.Tensor:
        """Output in training units (before out_scale/out_offset), from counts/s."""
        return self.raw(self.pre(rates))

    def forward(self, rates: torch.Tensor) -> torch.Tensor:
        return self.scaled(rates) * self.out_scale + self.out_offset

    def arch(self) -> dict:
        return {"pre": model_args(self.pre), "body": model_args(self.body),
                "outputs": int(self.out_scale.numel()), "squash": self.squash}

    @classmethod
    def from_arch(cls, pre: dict, body: dict, outputs: int, squash: bool) -> Model:
        return cls(build(pre), build(body), np.ones(outputs), np.zeros(outputs), squash)


@register
class LinearPlusMlp(Model):
    """Ours for element maps: a linear map of the counts/s themselves (what a linear
    fit or an ROI sum is) plus the study's one-hidden-layer MLP on the preprocessed
    features for what is not linear (overlaps, absorption, noise floor)."""

    def __init__(self, pre: PreprocessModule, body: nn.Module, out_scale: np.ndarray,
                 rate_scale: float) -> None:
        super().__init__(pre, body, out_scale, np.zeros(len(out_scale)))
        channels, outputs = pre.mean.shape[0], len(out_scale)
        self.linear = nn.Linear(channels, outputs, bias=False)
        nn.init.zeros_(self.linear.weight)
        self.register_buffer("inv_rate_scale", torch.tensor(1.0 / rate_scale))

    def scaled(self, rates: torch.Tensor) -> torch.Tensor:
        return self.raw(self.pre(rates)) + self.linear(rates * self.inv_rate_scale)

    def arch(self) -> dict:
        return {"pre": model_args(self.pre), "body": model_args(self.body),
                "outputs": int(self.out_scale.numel())}

    @classmethod
    def from_arch(cls, pre: dict, body: dict, outputs: int) -> LinearPlusMlp:
        return cls(build(pre), build(body), np.ones(outputs), 1.0)


@register
class Conv1dBody(nn.Module):
    """1-D CNN over the energy channels: three strided conv blocks, pooled, then a head."""

    def __init__(self, channels: int, outputs: int, width: int = 16) -> None:
        super().__init__()
        self.channels, self.outputs, self.width = channels, outputs, width
        self.conv = nn.Sequential(
            nn.Conv1d(1, width, 9, stride=2, padding=4), nn.ReLU(),
            nn.Conv1d(width, 2 * width, 9, stride=2, padding=4), nn.ReLU(),
            nn.Conv1d(2 * width, 2 * width, 9, stride=2, padding=4), nn.ReLU(),
            nn.AvgPool1d(4),
        )
        n = 2 * width * (channels // 32)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n, 64), nn.ReLU(), nn.Linear(64, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.unsqueeze(1)))

    def arch(self) -> dict:
        return {"channels": self.channels, "outputs": self.outputs, "width": self.width}

    @classmethod
    def from_arch(cls, **args: Any) -> Conv1dBody:
        return cls(**args)


@register
class AutoEncoder(nn.Module):
    """The study's autoencoder: 5 Linear+ReLU layers down to a 3-d latent read as RGB,
    5 up to the spectrum. The latent and the reconstruction are left linear (a ReLU
    there would clip standardised features and dark colours at 0)."""

    DOWN = (1024, 512, 128, 32, 8, 3)

    def __init__(self, channels: int = 1024) -> None:
        super().__init__()
        self.channels = channels
        down = [channels, *self.DOWN[1:]]
        self.encoder = Stack(down)
        self.decoder = Stack(down[::-1])

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(features)
        return z, self.decoder(z)

    def arch(self) -> dict:
        return {"channels": self.channels}

    @classmethod
    def from_arch(cls, channels: int) -> AutoEncoder:
        return cls(channels)


@register
class EncoderOnly(nn.Module):
    """The RGB half of an AutoEncoder, as the body of an exported rgb Model."""

    def __init__(self, ae: AutoEncoder) -> None:
        super().__init__()
        self.encoder = ae.encoder
        self.channels = ae.channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(features)

    def arch(self) -> dict:
        return {"channels": self.channels}

    @classmethod
    def from_arch(cls, channels: int) -> EncoderOnly:
        return cls(AutoEncoder(channels))


@register
class TrustScore(nn.Module):
    """counts/s -> one non-negative score: mean squared reconstruction error of the
    standardised features through an autoencoder fitted on the training scans."""

    def __init__(self, pre: PreprocessModule, ae: AutoEncoder) -> None:
        super().__init__()
        self.pre, self.ae = pre, ae

    def forward(self, rates: torch.Tensor) -> torch.Tensor:
        f = self.pre(rates)
        _, rec = self.ae(f)
        return ((rec - f) ** 2).mean(dim=1, keepdim=True)

    def arch(self) -> dict:
        return {"pre": model_args(self.pre), "ae": model_args(self.ae)}

    @classmethod
    def from_arch(cls, pre: dict, ae: dict) -> TrustScore:
        return cls(build(pre), build(ae))


# ------------------------------------------------------------- builders


def rgb_encoder(pre: Preprocess) -> Model:
    """The study's encoder: spectrum -> RGB with the autoencoder's down path."""
    channels = pre.grid.channels
    return Model(pre.module(), Stack([channels, 512, 128, 32, 8, 3]),
                 np.ones(3), np.zeros(3), squash=True)


def rgb_mlp(pre: Preprocess, hidden: int = 256, dropout: float = 0.2) -> Model:
    """Ours: a wide shallow MLP with dropout and a sigmoid onto 0..1."""
    channels = pre.grid.channels
    return Model(pre.module(), Stack([channels, hidden, 64, 3], dropout=dropout),
                 np.ones(3), np.zeros(3), squash=True)


def element_mlp(pre: Preprocess, target_scale: np.ndarray, hidden: int = 256) -> Model:
    """The study's element MLP: one hidden layer -> 8 maps (scaled to counts/s)."""
    n = len(target_scale)
    return Model(pre.module(), Stack([pre.grid.channels, hidden, n]),
                 target_scale, np.zeros(n))


def element_linmlp(pre: Preprocess, target_scale: np.ndarray, rate_scale: float,
                   hidden: int = 256) -> LinearPlusMlp:
    n = len(target_scale)
    return LinearPlusMlp(pre.module(), Stack([pre.grid.channels, hidden, n]), target_scale,
                         rate_scale)


def element_cnn(pre: Preprocess, target_scale: np.ndarray) -> Model:
    n = len(target_scale)
    return Model(pre.module(), Conv1dBody(pre.grid.channels, n), target_scale, np.zeros(n))
