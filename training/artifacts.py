"""Trained models on disk: `artifacts/trained/<name>/` = model file + info.json.

Two kinds of model, both consumed by export/:

* torch: an `nn.Module` taking float32 (N, D) counts per live second on
  info["grid"] and returning float32 (N, len(info["outputs"])) in info["units"];
  preprocessing is inside the module. Stored as `model.pt`, a weights-only checkpoint
  (nanoGPT style): {"model": state_dict, "model_args": training.models.model_args(model),
  "config": the training configuration}. Loading rebuilds the class named in model_args
  from training.models.MODEL_CLASSES and reads the file with `weights_only=True`, so a
  checkpoint can carry tensors and plain values but never code.
* sklearn: an estimator whose input is the *preprocessed* features; the
  preprocessing stats are in info["preprocess"] (see training.preprocess) so
  export can prepend the same ONNX ops. Stored as `model.pkl` (pickle: load only
  files you made).

info keys: kind ("rgb" | "elements" | "trust"), framework ("torch" | "sklearn"),
grid (EnergyGrid dict), outputs (names), units, train_data, metrics, and
free-form extras (config, model description ...).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from proto.bundle import KINDS
from training import models
from training.jsonutil import jsonable

DEFAULT_ROOT = Path("artifacts/trained")
REQUIRED = ("kind", "grid", "outputs", "units", "train_data", "metrics")


def save_checkpoint(path: str | Path, model: nn.Module, config: dict | None = None) -> None:
    """Weights + the arguments that rebuild `model` + the run's configuration."""
    model = model.eval().cpu()
    torch.save({"model": model.state_dict(), "model_args": models.model_args(model),
                "config": jsonable(config or {})}, path)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """-> (model in eval mode on CPU, the checkpoint's config). Refuses any file that needs
    more than tensors and plain values to load (weights_only=True)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{path} is not a weights-only checkpoint, refused "
                         f"(re-run make train): {first}") from None
    model = models.build(ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt.get("config", {})


def save(name: str, model, info: dict, root: str | Path = DEFAULT_ROOT) -> Path:
    """Write `model` and `info` to `<root>/<name>/`; returns the folder."""
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise ValueError(f"info for {name!r} lacks {missing}")
    if info["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {info['kind']!r}")
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    info = dict(info)
    if isinstance(model, nn.Module):
        info["framework"] = "torch"
        save_checkpoint(folder / "model.pt", model, info.get("config"))
        (folder / "model.pkl").unlink(missing_ok=True)
    else:
        info["framework"] = "sklearn"
        if "preprocess" not in info:
            raise ValueError("a scikit-learn model needs info['preprocess'] (its input features)")
        with open(folder / "model.pkl", "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        (folder / "model.pt").unlink(missing_ok=True)
    (folder / "info.json").write_text(json.dumps(jsonable(info), indent=1) + "\n")
    return folder


def load(name: str, root: str | Path = DEFAULT_ROOT):
    """-> (model, info) as saved; torch models come back in eval mode on CPU."""
    folder = Path(root) / name
    info_path = folder / "info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"no trained model {name!r} in {Path(root)} (run make train)")
    info = json.loads(info_path.read_text())
    if info["framework"] == "torch":
        model, _ = load_checkpoint(folder / "model.pt")
    else:
        with open(folder / "model.pkl", "rb") as f:
            model = pickle.load(f)
    return model, info


def available(root: str | Path = DEFAULT_ROOT) -> list[str]:
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/info.json")) if root.exists() else []
