"""Registration refuses, in one line and with exit status 2, what cannot register a photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from proto.dataset import write_dataset
from proto.energy import EnergyGrid
from training import register

H, W = 10, 12  # scan pixels


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("register_errors")
    grid = EnergyGrid(0.0, 0.05, 64)
    counts = np.random.default_rng(0).poisson(3, (H, W, 64)).astype(np.uint16)
    live = np.full((H, W), 0.1, np.float32)
    dataset = write_dataset(out / "scan.h5", counts, grid, live, live, compression=None)
    image = (np.random.default_rng(1).random((90, 100, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(out / "photo.png")
    return out / "photo.png", dataset, out


def run(files, capsys, *extra: str) -> str:
    photo, dataset, _ = files
    assert register.main([str(photo), str(dataset), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("register: ") and "\n" not in err and "Traceback" not in err
    return err


def points(files, rows: list[tuple[float, float, float, float]]) -> str:
    path = files[2] / "points.txt"
    path.write_text("\n".join(" ".join(str(v) for v in r) for r in rows) + "\n")
    return str(path)


def test_too_few_points(files, capsys):
    err = run(files, capsys, "--points", points(files, [(10, 10, 0, 0), (60, 10, 11, 0)]))
    assert "need at least 3 control-point pairs, got 2" in err


def test_scan_points_outside_the_scan(files, capsys):
    rows = [(10, 10, 0, 0), (80, 12, 11, 0), (12, 70, 0, 9), (80, 70, 70, 80)]
    err = run(files, capsys, "--points", points(files, rows))
    assert "scan point 4 (70, 80) is outside the 12 x 10 scan" in err


def test_collinear_points(files, capsys):
    line = [(10 + 5 * i, 10 + 2 * i, i, 0.4 * i) for i in range(5)]
    assert "lie on a line" in run(files, capsys, "--points", points(files, line))
    three_of_four = [(10, 10, 0, 0), (30, 10, 4, 0), (60, 10, 11, 0), (60, 60, 11, 9)]
    err = run(files, capsys, "--points", points(files, three_of_four))
    assert "points 1, 2, 3 lie on a line" in err


def test_swapped_corners_fold(files, capsys):
    err = run(files, capsys, "--corners", "10,10", "80,12", "12,70", "78,66")
    assert "the transform folds the scan area" in err
    err = run(files, capsys, "--corners", "10,10", "80,10", "10,70", "80,70")  # a bow-tie
    assert "cannot fit a transform to these points (in the wrong order?)" in err


def test_bad_point_files_and_references(files, capsys):
    assert "not numbers" in run(files, capsys, "--points",
                                points(files, [("a", 1, 2, 3)]))  # type: ignore[list-item]
    assert "need 4 finite numbers" in run(files, capsys, "--points",
                                          points(files, [(1, 2, 3)]))  # type: ignore[list-item]
    corners = ["10,10", "80,10", "80,70", "10,70"]
    assert "unknown reference zn" in run(files, capsys, "--corners", *corners, "--refine", "zn")
    assert "need exactly 4 corners" not in run(files, capsys, "--corners", "1,2,3", *corners[1:])


def test_scan_area_outside_the_photo(files, capsys):
    err = run(files, capsys, "--corners", "50,10", "150,10", "150,80", "50,80")
    assert "the scan area falls outside the 100 x 90 photograph" in err


def test_unreadable_photo(files, capsys):
    _, dataset, out = files
    bad = out / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert register.main([str(bad), str(dataset), "--corners", "10,10", "80,10", "80,70",
                          "10,70"]) == 2
    assert "cannot read the photograph" in capsys.readouterr().err


def test_three_points_register_with_an_affine(files, capsys):
    photo, dataset, _ = files
    rows = [(10, 10, 0, 0), (80, 12, 11, 0), (12, 70, 0, 9)]
    assert register.main([str(photo), str(dataset), "--points", points(files, rows)]) == 0
    stored = register.read_registration(dataset)
    assert np.allclose(stored["transform"][2], [0, 0, 1])
    assert stored["refinement"] == {"method": "none"}
