"""Trained models on disk: `artifacts/trained/<name>/` = model file + info.json.

Two kinds of model, both consumed by export/:

* torch: an `nn.Module` taking float32 (N, D) counts per live second on
  info["grid"] and returning float32 (N, len(info["outputs"])) in info["units"];
  preprocessing is inside the module. Stored whole as `model.pt` (torch.save),
  so loading needs `training.models` importable.
* sklearn: an estimator whose input is the *preprocessed* features; the
  preprocessing stats are in info["preprocess"] (see training.preprocess) so
  export can prepend the same ONNX ops. Stored as `model.pkl` (pickle).

info keys: kind ("rgb" | "elements" | "trust"), framework ("torch" | "sklearn"),
grid (EnergyGrid dict), outputs (names), units, train_data, metrics, and
free-form extras (config, training time ...).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_ROOT = Path("artifacts/trained")
KINDS = ("rgb", "elements", "trust")
REQUIRED = ("kind", "grid", "outputs", "units", "train_data", "metrics")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


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
        model = model.eval().cpu()
        torch.save(model, folder / "model.pt")
        (folder / "model.pkl").unlink(missing_ok=True)
    else:
        info["framework"] = "sklearn"
        if "preprocess" not in info:
            raise ValueError("a scikit-learn model needs info['preprocess'] (its input features)")
        with open(folder / "model.pkl", "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        (folder / "model.pt").unlink(missing_ok=True)
    (folder / "info.json").write_text(json.dumps(_jsonable(info), indent=1) + "\n")
    return folder


def load(name: str, root: str | Path = DEFAULT_ROOT):
    """-> (model, info) as saved; torch models come back in eval mode on CPU."""
    folder = Path(root) / name
    info_path = folder / "info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"no trained model {name!r} in {Path(root)} (run make train)")
    info = json.loads(info_path.read_text())
    if info["framework"] == "torch":
        import training.models  # noqa: F401  (classes the pickle refers to)

        model = torch.load(folder / "model.pt", map_location="cpu", weights_only=False).eval()
    else:
        with open(folder / "model.pkl", "rb") as f:
            model = pickle.load(f)
    return model, info


def available(root: str | Path = DEFAULT_ROOT) -> list[str]:
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/info.json")) if root.exists() else []
