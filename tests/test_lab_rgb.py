"""RGB models from a lab's scans (issue 14 items 2 and 3).

Must show, test-sized: the RGB model trained through the lab's path (camera photograph ->
four clicked corners -> refined registration -> training.lab_rgb) reaches an R² within 0.02
of the same model trained on the perfectly aligned photograph. Here on one simulated scene
(m1_child, 1426 pixels; the held-out area is its automatic split, the bottom quarter) with
kNN k = 10 (deterministic, the study's best), to stay well under a minute. The full-size
comparison (train m1_virgin, test m1_child, every model) is
`python -m training.report.lab_rgb` (reports/REPORT.md section 1b).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from proto.bundle import load_bundle
from proto.dataset import open_dataset, write_dataset
from training import lab_rgb, scenes
from training.catalogue import RGB_TEST
from training.lab_split import Rect, SplitError, auto_rect, gap_px, split
from training.report.lab_rgb import compare, diagnostics, into_report, section, summary
from training.report.lab_rgb_diag import FLAT, REGISTERED


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab_rgb_data")
    return scenes.make_scene(RGB_TEST, out, progress=False, png=False)


def test_lab_path_reaches_the_aligned_r2(child, tmp_path, capsys):
    c = compare(child, None, tmp_path, names=["knn10"])
    diag = diagnostics(c, child, None, tmp_path)
    row = c.rows()["knn10"]
    with capsys.disabled():
        print("\n" + section(summary(c, diag)))
    reg = c.registered[0][child.stem]
    assert reg.error_after <= 0.5 and reg.error_after < reg.error_before
    assert c.lab[0].parts[0].area.startswith("rectangle x0,y0,w,h = 0,34,31,12")
    assert row["r2_aligned"] > 0.4  # the model learnt colour, not noise
    assert abs(row["r2_diff"]) <= 0.02
    # with the camera's light divided out, the lab path trains kNN as well as the aligned
    # photograph seen through the beam's footprint does
    r2 = diag["r2"]
    beam = next(k for k in r2 if k.startswith("aligned, averaged over the beam"))
    assert diag["models"] == ["knn10"] and abs(r2[FLAT]["knn10"] - r2[beam]["knn10"]) <= 0.02
    assert r2[REGISTERED]["knn10"] == pytest.approx(row["r2_registered"])
    # the registered photograph differs from the aligned one (light, blur, JPEG): the
    # comparison is not of a model with itself
    with open_dataset(reg.dataset) as r, open_dataset(child) as a:
        assert np.abs(r.photo_rgb.astype(int) - a.photo_rgb.astype(int)).mean() > 1.0


def test_held_out_rectangle_never_touches_training():
    scene = load_scene_stub((20, 30))
    rect = Rect(10, 5, 8, 6)
    (part,) = split([scene], [], rect, [2.0])
    gap = gap_px(2.0)
    assert gap == 3
    rows, cols = np.divmod(part.train, 30)
    # every training pixel lies outside the rectangle grown by the footprint's reach
    outside = ((cols < rect.x0 - gap) | (cols >= rect.x0 + rect.w + gap)
               | (rows < rect.y0 - gap) | (rows >= rect.y0 + rect.h + gap))
    assert outside.all()
    assert len(part.test) == rect.w * rect.h and not set(part.test) & set(part.train)
    assert len(part.train) == 20 * 30 - (8 + 6) * (6 + 6)
    assert auto_rect((20, 30)) == Rect(22, 0, 8, 20)  # last quarter of the longer axis
    # automatic: several scans hold out the last one whole (the study's protocol)
    a, b = split([scene, load_scene_stub((6, 5))], [], None, [0.0, 0.0])
    assert len(a.train) == 600 and len(a.test) == 0 and len(b.train) == 0
    assert len(b.test) == 30 and b.area == "whole scan"
    with pytest.raises(SplitError, match="beyond the 30 x 20 scan"):
        split([scene], [], Rect(25, 0, 8, 4), [0.0])
    with pytest.raises(SplitError, match="training pixels left"):
        split([scene], [], Rect(0, 0, 30, 20), [0.0])
    # a beam as wide as the scan leaves nothing beside the rectangle, and the message says why
    with pytest.raises(SplitError, match=r"the 23 px kept out around it \(the footprint of a "
                                         r"17.9 px beam\)"):
        split([scene], [], Rect(22, 0, 8, 20), [17.9])


def load_scene_stub(shape):
    from pathlib import Path

    from training.data import Scene

    n = shape[0] * shape[1]
    rates = np.ones((n, 4), np.float32)
    return Scene("stub", Path("stub.h5"), shape, rates, 1.0,
                 photo=np.full((n, 3), 0.5, np.float32))


def test_command_trains_scores_and_exports_with_the_instrument(child, tmp_path, capsys):
    out = tmp_path / "run"
    train = child
    code = lab_rgb.main([str(train), "--held-out", "0,10,12,6", "--out", str(out),
                         "--models", "knn10,mlp_dwell", "--rgb_epochs=1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out pixels" in printed and "best:" in printed
    summary = json.loads((out / "lab_rgb.json").read_text())
    assert set(summary["models"]) == {"knn10", "mlp_dwell"}
    for m in summary["models"].values():
        assert m["pixels"] == 12 * 6 and np.isfinite(m["r2"]) and m["delta_e_median"] >= 0
    info = json.loads((out / "trained" / "rgb" / "info.json").read_text())
    with open_dataset(train) as ds:
        fingerprint = ds.instrument["fingerprint"]
    assert info["train_data"]["datasets"][0]["instrument"]["fingerprint"] == fingerprint
    assert info["metrics"]["test"]["r2"] == summary["models"][summary["best"]]["r2"]
    assert (out / "lab_rgb.png").stat().st_size > 0

    from export.__main__ import main as export_main

    assert export_main(["model", "rgb", "--trained", str(out / "trained"),
                        "--out", str(tmp_path / "models"), "--data", str(out)]) == 0
    manifest = load_bundle(tmp_path / "models" / "rgb").manifest
    assert manifest.kind == "rgb"
    # the instrument it was trained for, its training domain and held-out figures
    assert [i.fingerprint for i in manifest.identities] == [fingerprint]
    assert manifest.training_domain.dwell_s is not None
    assert manifest.training_domain.subspace is not None
    assert manifest.metrics["test"]["pixels"] == 72
    assert manifest.training["data"]["held_out"]["areas"][0]["area"].startswith("rectangle")


def test_user_mistakes_get_one_line(child, tmp_path, capsys):
    bare = tmp_path / "bare.h5"
    with open_dataset(child) as ds:
        write_dataset(bare, np.asarray(ds.counts), ds.grid, ds.live_time_s, ds.real_time_s)
    assert lab_rgb.main([str(bare), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no photograph: register one first" in err
    train = str(child)
    assert lab_rgb.main([train, "--held-out", "5,5,40,4", "--out", str(tmp_path / "o")]) == 2
    assert "reaches beyond" in capsys.readouterr().err
    assert lab_rgb.main([train, "--held-out", "1,2,3", "--out", str(tmp_path / "o")]) == 2
    assert "x0,y0,w,h" in capsys.readouterr().err
    assert lab_rgb.main([train, "--models", "svm", "--out", str(tmp_path / "o")]) == 2
    assert "unknown model 'svm'" in capsys.readouterr().err


def test_section_goes_into_the_report_in_place(tmp_path):
    md = tmp_path / "REPORT.md"
    md.write_text("# R\n\n## 1. RGB\n\ntable one\n\n\n## 2. Elements\n\ntable two\n")
    into_report(md, "## 1b. lab\n\nfirst")
    assert md.read_text() == ("# R\n\n## 1. RGB\n\ntable one\n\n\n## 1b. lab\n\nfirst\n\n"
                              "## 2. Elements\n\ntable two\n")
    into_report(md, "## 1b. lab\n\nsecond\n")  # replaced, not added again
    text = md.read_text()
    assert text.count("## 1b.") == 1 and "second" in text and "first" not in text
    assert text.endswith("## 2. Elements\n\ntable two\n") and "table one" in text
