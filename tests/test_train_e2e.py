"""End to end on the tiny simulated scenes: `train default` writes the rgb and trust models and
they reach a stated accuracy (tiny data, short training: modest but far above chance). The
elements model (compiled fast fit + residual) has its own: tests/test_element_bundle.py."""

from pathlib import Path

import pytest

from tests.scene_support import tiny_scenes
from training import artifacts, library, train
from training.metrics import r2_rgb

SCENES = ("m1_virgin", "m1_child")  # train default: rgb and trust (M1 scenes)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return tiny_scenes(tmp_path_factory.mktemp("tiny"), SCENES)


def test_train_default_on_tiny_scenes(tiny_data, tmp_path):
    saved = train.train_default(tiny_data, tmp_path, epochs_scale=0.5,
                                rgb_library=library.LibraryConfig(stacks=40, pixels=400))
    assert set(saved) == {"rgb", "trust"}
    assert artifacts.available(tmp_path) == ["rgb", "trust"]

    rgb, info = artifacts.load("rgb", tmp_path)
    assert info["kind"] == "rgb" and info["outputs"] == ["R", "G", "B"]
    virgin = train.load_scene(tiny_data / "m1_virgin_tiny.h5")
    pred = train.predict(rgb, virgin.rates)
    assert pred.shape == (len(virgin.rates), 3)
    assert r2_rgb(virgin.photo, pred) >= 0.7  # stated accuracy: fits its training scene

    trust, info = artifacts.load("trust", tmp_path)
    score = train.predict(trust, virgin.rates)
    assert score.shape == (len(virgin.rates), 1) and (score >= 0).all()


def test_cli_prints_and_stores_its_config(tiny_data, tmp_path, capsys):
    """`python -m training.train default --key=value`: the config a run used is printed first
    and stored in every artifact (info.json and the checkpoint)."""
    train.main(["default", "--data", str(tiny_data), "--out", str(tmp_path), "--epochs-scale",
                "0.1", "--library.stacks=20", "--library.pixels=200", "--el_hidden=32"])
    printed = capsys.readouterr().out
    assert printed.startswith("# training config\n") and "el_hidden = 32\n" in printed
    for name in ("rgb", "trust"):
        _, info = artifacts.load(name, tmp_path)
        assert info["config"]["el_hidden"] == 32 and info["config"]["epochs_scale"] == 0.1
        assert info["config"]["library"]["stacks"] == 20
        _, stored = artifacts.load_checkpoint(tmp_path / name / "model.pt")
        assert stored == info["config"]
