"""Checkpoints: weights + constructor arguments + config, loaded with weights_only=True."""

import numpy as np
import pytest
import torch

from export.torch_export import autoencoder_parts
from training import artifacts, models
from training.preprocess import MODEL_GRID, Preprocess

RAN: list[str] = []  # what an unpickled payload did (must stay empty)


def _payload() -> str:
    RAN.append("code ran")
    return "pwned"


class Payload:
    def __reduce__(self):
        return (_payload, ())


@pytest.fixture(scope="module")
def pre() -> Preprocess:
    rng = np.random.default_rng(0)
    return Preprocess.fit(rng.gamma(1.0, 20.0, (64, MODEL_GRID.channels)).astype(np.float32))


def every_kind(pre: Preprocess) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    scale = np.linspace(1.0, 8.0, 8).astype(np.float32)
    ae_rgb, ae_trust = autoencoder_parts(pre.module(), models.AutoEncoder(MODEL_GRID.channels))
    return {
        "element_mlp": models.element_mlp(pre, scale, hidden=16),
        "element_linmlp": models.element_linmlp(pre, scale, 123.0, hidden=16),
        "element_cnn": models.element_cnn(pre, scale),
        "rgb_mlp": models.rgb_mlp(pre, hidden=16),
        "rgb_encoder": models.rgb_encoder(pre),
        "ae_rgb": ae_rgb,
        "trust": models.TrustScore(pre.module(), models.AutoEncoder(MODEL_GRID.channels)),
        "ae_trust": ae_trust,
    }


@pytest.mark.parametrize("name", ["element_mlp", "element_linmlp", "element_cnn", "rgb_mlp",
                                  "rgb_encoder", "ae_rgb", "trust", "ae_trust"])
def test_checkpoint_round_trip_gives_the_same_outputs(pre, tmp_path, name) -> None:
    model = every_kind(pre)[name].eval()
    with torch.no_grad():  # weights away from their initial values, buffers too
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    config = {"seed": 3, "library": {"stacks": 40}, "rgb_dwell_aug": (0.05, 1.0)}
    artifacts.save_checkpoint(tmp_path / "model.pt", model, config)
    back, back_config = artifacts.load_checkpoint(tmp_path / "model.pt")
    assert type(back) is type(model) and not back.training
    assert back_config == {"seed": 3, "library": {"stacks": 40}, "rgb_dwell_aug": [0.05, 1.0]}
    x = torch.from_numpy(np.random.default_rng(1).gamma(1.0, 20.0, (32, MODEL_GRID.channels))
                         .astype(np.float32))
    with torch.no_grad():
        np.testing.assert_array_equal(back(x).numpy(), model(x).numpy())
    assert models.model_args(back) == models.model_args(model)


def test_loading_is_weights_only(pre, tmp_path, monkeypatch) -> None:
    model = models.element_mlp(pre, np.ones(8, np.float32), hidden=8)
    artifacts.save_checkpoint(tmp_path / "good.pt", model)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    artifacts.load_checkpoint(tmp_path / "good.pt")
    assert calls and calls[0]["weights_only"] is True


def test_a_checkpoint_holding_code_is_refused(pre, tmp_path) -> None:
    model = models.element_mlp(pre, np.ones(8, np.float32), hidden=8)
    evil = {"model": model.state_dict(), "model_args": models.model_args(model),
            "config": {"note": Payload()}}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a weights-only checkpoint, refused"):
        artifacts.load_checkpoint(tmp_path / "evil.pt")
    torch.save(model, tmp_path / "whole.pt")  # the old format: a pickled module
    with pytest.raises(ValueError, match="not a weights-only checkpoint, refused"):
        artifacts.load_checkpoint(tmp_path / "whole.pt")
    assert RAN == []


def test_only_registered_classes_are_saved_or_built(pre, tmp_path) -> None:
    with pytest.raises(TypeError, match=r"not in training\.models\.MODEL_CLASSES"):
        artifacts.save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(4, 2))
    spec = models.model_args(models.rgb_mlp(pre, hidden=8))
    with pytest.raises(ValueError, match="unknown model class 'Nope'"):
        models.build({**spec, "class": "Nope"})
