"""End to end on the tiny simulated scenes: `train default` writes the three edge models and
they reach a stated accuracy (tiny data, short training: modest but far above chance)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from proto.elements import ELEMENTS
from training import artifacts, library, train
from training.metrics import element_errors, r2_rgb

SCENES = ("m1_virgin", "m1_child", "m6_corpus", "m6_ioannis")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny scenes, from data/ when `make data` made them, else simulated here."""
    scenes = pytest.importorskip("training.scenes")
    out = tmp_path_factory.mktemp("tiny")
    for name in SCENES:
        made = REPO / "data" / f"{name}_tiny.h5"
        if made.exists():
            shutil.copy(made, out / made.name)
        else:
            scenes.make_scene(name, out, tiny=True, progress=False, png=False)
    return out


def test_train_default_on_tiny_scenes(tiny_data, tmp_path):
    saved = train.train_default(tiny_data, tmp_path, epochs_scale=0.5,
                                rgb_library=library.LibraryConfig(stacks=40, pixels=400))
    assert set(saved) == {"rgb", "elements", "trust"}
    assert artifacts.available(tmp_path) == ["elements", "rgb", "trust"]

    rgb, info = artifacts.load("rgb", tmp_path)
    assert info["kind"] == "rgb" and info["outputs"] == ["R", "G", "B"]
    virgin = train.load_scene(tiny_data / "m1_virgin_tiny.h5")
    pred = train.predict(rgb, virgin.rates)
    assert pred.shape == (len(virgin.rates), 3)
    assert r2_rgb(virgin.photo, pred) >= 0.7  # stated accuracy: fits its training scene

    el, info = artifacts.load("elements", tmp_path)
    assert info["outputs"] == list(ELEMENTS) and info["units"] == "counts/s"
    test = train.load_scene(tiny_data / "m6_ioannis_tiny.h5")
    maps = train.predict(el, test.rates)
    assert maps.shape == (len(test.rates), 8)
    r = [element_errors(test.elements[:, j], maps[:, j])["pearson_r"]
         for j in range(8) if test.elements[:, j].std() > 0]
    assert np.nanmedian(r) >= 0.5  # stated accuracy: unseen panel, median r over elements

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
    for name in ("rgb", "elements", "trust"):
        _, info = artifacts.load(name, tmp_path)
        assert info["config"]["el_hidden"] == 32 and info["config"]["epochs_scale"] == 0.1
        assert info["config"]["library"]["stacks"] == 20
        _, stored = artifacts.load_checkpoint(tmp_path / name / "model.pt")
        assert stored == info["config"]
    el, _ = artifacts.load("elements", tmp_path)
    assert el.body[0].out_features == 32
