"""Training configuration: plain values, overridable from a TOML file or `--key=value`.

nanoGPT's configurator idea (defaults in code, a file and the command line on top), but
type-checked: an unknown key or a value of the wrong type stops the run with one line naming
the key, instead of training for an hour on a typo. Nested dataclasses (the pigment library)
are TOML tables, `[library]`, or dotted keys, `--library.stacks=200`.

    cfg = load_config("my.toml", ["--rgb_epochs=10", "--library.stacks=200"])
    print(to_toml(cfg))            # every run prints this; a file it can be re-run from

Command-line values are Python literals (`10`, `1e-3`, `(0.05, 1.0)`, `true` is spelt `True`);
anything that is not one is taken as a string.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from training.library import LibraryConfig

C = TypeVar("C")


class ConfigError(ValueError):
    """A bad key or value in a training configuration (one line, names the key)."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    threads: int = 2  # torch threads: the machine has two cores
    epochs_scale: float = 1.0  # multiplies every epoch count of `train default` (tests: < 1)
    # RGB networks (train set ~ a few thousand spectra)
    rgb_epochs: int = 30
    rgb_batch: int = 64
    rgb_lr: float = 1e-3
    rgb_wd: float = 1e-4
    rgb_dwell_aug: tuple[float, float] = (0.05, 1.0)  # s: our RGB MLP's re-counted dwells
    ae_c_sweep: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)  # RGB term vs reconstruction
    ae_c_default: float = 10.0
    library: LibraryConfig = field(default_factory=LibraryConfig)  # reference paints (RGB)
    # element networks (train set ~ 240k spectra)
    el_epochs: int = 4
    el_batch: int = 256
    el_lr: float = 2e-3
    el_wd: float = 1e-5
    el_hidden: int = 256
    el_ridge: float = 1e-2  # ridge of the linear branch, relative to the mean diagonal of X'X
    el_stats_spectra: int = 50_000  # preprocessing / linear branch fitted on <= this many
    cnn_epochs: int = 2
    cnn_subsample: int = 60_000  # the CNN costs ~25x the MLP per spectrum
    # optional dwell augmentation (off by default: m6_corpus is already at the edge's 10 ms)
    dwell_aug: tuple[float, float] = (0.005, 0.2)  # s: Poisson-resample to a dwell in here
    dwell_aug_p: float = 0.7  # fraction of each batch resampled
    # the study's autoencoder shape: narrower ones cost the edge 4x less but their AUROC
    # on m1_child swung 0.73-0.92 with the seed (this one: 0.92 +- 0.01)
    trust_epochs: int = 30
    trust_subsample: int = 60_000

    def epochs(self, n: int) -> int:
        """An epoch count scaled by epochs_scale, at least 1."""
        return max(1, round(n * self.epochs_scale))


DEFAULT = TrainConfig()


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    return getattr(tp, "__name__", str(tp))


def _check(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp` (int -> float and list -> tuple are the only conversions)."""
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif typing.get_origin(tp) is tuple and isinstance(value, list | tuple):
        args = typing.get_args(tp)
        kinds = [args[0]] * len(value) if args[1:] == (Ellipsis,) else list(args)
        if len(kinds) == len(value):
            return tuple(_check(v, t, f"{key}[{i}]")
                         for i, (v, t) in enumerate(zip(value, kinds, strict=True)))
    if not ok:
        raise ConfigError(f"config key {key!r} must be {_type_name(tp)}, "
                          f"got {type(value).__name__} {value!r}")
    return value


def override(cfg: C, values: dict[str, Any], prefix: str = "") -> C:
    """A copy of dataclass `cfg` with `values` (nested dicts for nested dataclasses)."""
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if k not in names:
            near = difflib.get_close_matches(k, names, n=1)
            hint = f" (did you mean {prefix + near[0]!r}?)" if near else ""
            raise ConfigError(f"unknown config key {key!r}{hint}")
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, dict):
                raise ConfigError(f"config key {key!r} is a table of "
                                  f"{hints[k].__name__} values, got {v!r}")
            changes[k] = override(getattr(cfg, k), v, f"{key}.")
        else:
            changes[k] = _check(v, hints[k], key)
    return dataclasses.replace(cfg, **changes)


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """["--rgb_epochs=5", "--library.stacks=40"] -> {"rgb_epochs": 5, "library": {...}}."""
    out: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"expected --key=value, got {arg!r}")
        key, text = arg[2:].split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            value = text  # a bare word is a string
        *tables, last = key.replace("-", "_").split(".")
        node = out
        for t in tables:
            node = node.setdefault(t, {})
        node[last] = value
    return out


def load_config(path: str | Path | None = None, args: Sequence[str] = (),
                base: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or `base`), then the TOML file at `path`, then `--key=value` args."""
    cfg = base or TrainConfig()
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
        cfg = override(cfg, values)
    return override(cfg, parse_overrides(list(args)))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for anything a config holds
    return repr(v)


def to_toml(cfg: Any) -> str:
    """`cfg` as a TOML file that load_config reads back to an equal config."""
    lines, tables = [], []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            tables.append((f.name, v))
        else:
            lines.append(f"{f.name} = {_toml_value(v)}")
    for name, table in tables:
        lines += ["", f"[{name}]"]
        lines += [f"{g.name} = {_toml_value(getattr(table, g.name))}"
                  for g in dataclasses.fields(table)]
    return "\n".join(lines) + "\n"
