"""Plain JSON values from what training and export hold (dataclasses, numpy, paths).

One helper for every JSON file training or export writes (info.json, a scene's instrument
record, configs), so they agree on how numpy and paths come out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(x: Any) -> Any:
    """`x` as dicts, lists, str, int, float, bool and None; TypeError on anything else
    (an unknown object in a record is a bug to see, not to stringify)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    if x is None or isinstance(x, bool | int | float | str):
        return x
    raise TypeError(f"{type(x).__name__} is not JSON-able: {x!r}")
