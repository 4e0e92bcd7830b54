"""The scene catalogue: every named simulated scan, and which scene trains and which tests what.

| scene            | instrument | spot   | pixels (H x W)                   | dwell  | role    |
|------------------|------------|--------|----------------------------------|--------|---------|
| m1_virgin        | M1 Mistral | 1 mm   | 65 x 41 = 2665                   | 1 s    | 1 train |
| m1_child         | M1 Mistral | 2 mm   | 46 x 31 = 1426                   | 1 s    | 1 test  |
| m6_corpus        | M6         | 580 um | 2 x 2 panels 245 x 245 = 240100  | 10 ms  | 2 train |
| m6_ioannis       | M6         | 580 um | 367 x 274 (width 274)            | 10 ms  | 2 test  |
| m6_ioannis_100ms | M6         | 580 um | 367 x 274                        | 100 ms | 2 test  |

(role: experiment 1 = spectra -> RGB, 2 = spectra -> element maps, SCIENCE.md)

The one place training, export (held-out spectra for parity) and the demo (a scene no model
was trained on) learn these names from. Light on purpose: no torch, no simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SceneConfig:
    name: str
    instrument: str  # "M1" | "M6"
    spot_um: float
    pixel_um: float
    panel_shape: tuple[int, int]  # (H, W) of one panel
    layout: tuple[int, int]  # panels as (rows, cols)
    dwell_s: float
    seed: int
    tiny_panel_shape: tuple[int, int]

    @property
    def n_panels(self) -> int:
        return self.layout[0] * self.layout[1]


SCENES: dict[str, SceneConfig] = {c.name: c for c in (
    SceneConfig("m1_virgin", "M1", 1000, 1000, (65, 41), (1, 1), 1.0, 101, (16, 12)),
    SceneConfig("m1_child", "M1", 2000, 2000, (46, 31), (1, 1), 1.0, 102, (16, 12)),
    SceneConfig("m6_corpus", "M6", 580, 600, (245, 245), (2, 2), 0.010, 601, (12, 12)),
    SceneConfig("m6_ioannis", "M6", 580, 1000, (367, 274), (1, 1), 0.010, 602, (24, 18)),
    SceneConfig("m6_ioannis_100ms", "M6", 580, 1000, (367, 274), (1, 1), 0.100, 602, (24, 18)),
)}
ALL = tuple(SCENES)  # what `python -m training.scenes` makes without --only

# The study's two experiments: each model trains on one scene and is judged on its pair.
RGB_TRAIN, RGB_TEST = "m1_virgin", "m1_child"
EL_TRAIN, EL_TEST = "m6_corpus", "m6_ioannis"
TRUST_TRAIN = RGB_TRAIN  # the trust score flags paint unlike the RGB model's training scan
HELD_OUT = {RGB_TRAIN: RGB_TEST, EL_TRAIN: EL_TEST}  # training scene -> scene never trained on
# held-out scene by model kind, for a model whose training scene is none of the above
TEST_FOR_KIND = {"rgb": RGB_TEST, "elements": EL_TEST, "trust": EL_TEST}


def output_path(out_dir: str | Path, name: str, tiny: bool = False) -> Path:
    """Where `python -m training.scenes` writes scene `name`."""
    return Path(out_dir) / f"{name}{'_tiny' if tiny else ''}.h5"


def scene_candidates(data: str | Path, name: str) -> list[Path]:
    """data/<name>.h5, then its tiny variant (tests and `make demo` have only that)."""
    return [output_path(data, name), output_path(data, name, tiny=True)]


def scene_path(data: str | Path, name: str) -> Path:
    """The first of scene_candidates that exists."""
    for cand in scene_candidates(data, name):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"no {name}.h5 in {data} (run make data)")
