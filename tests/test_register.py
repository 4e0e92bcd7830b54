"""Registration of a camera photograph to a scan (issue 14, item 1).

Must show: a simulated panel photographed as a camera would (5x the scan's resolution,
a crop with panel around the scan area, 2.5-4 degrees of rotation, mild perspective, a
lighting gradient, JPEG), registered back from its four corners clicked a few photo
pixels off, lands within 0.5 scan pixel (mean over the scan) after refinement.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.transform import ProjectiveTransform

from proto.dataset import open_dataset
from tests.register_scene import HEIGHT, WIDTH, make_scene
from training import align, photo, register

SHAPE = (HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("register"), seed=7)


def clicked_corners(scene, error_px: float, seed: int = 3) -> np.ndarray:
    """The scan area's true corners in the photo, each clicked up to `error_px` off."""
    true = scene.truth(align.scan_corners(SHAPE))
    return true + np.random.default_rng(seed).uniform(-error_px, error_px, true.shape)


# photo pixels (5 per scan pixel): a hurried user's clicks, 3-4.5 px off each corner
CLICK_ERRORS = np.array([[3.0, -3.0], [-4.0, 2.0], [2.5, 3.5], [-2.0, -4.0]])


def test_registers_camera_photo_within_half_a_scan_pixel(scene, tmp_path, capsys):
    corners = scene.truth(align.scan_corners(SHAPE)) + CLICK_ERRORS
    check = tmp_path / "check.png"
    args = [str(scene.photo), str(scene.dataset), "--corners",
            *(f"{x:.2f},{y:.2f}" for x, y in corners), "--refine", "all",
            "--check", str(check)]
    assert register.main(args) == 0
    assert "refined on total,ca,mn,fe" in capsys.readouterr().out

    stored = register.read_registration(scene.dataset)
    before = scene.error_px(register.fit_transform(*register.corner_points(corners, SHAPE),
                                                   SHAPE))
    after = scene.error_px(ProjectiveTransform(matrix=stored["transform"]))
    with capsys.disabled():
        print(f"\nregistration error, mean over the scan: {before:.3f} scan px from the "
              f"clicked corners, {after:.3f} after refinement ({stored['refinement']})")
    assert after <= 0.5 and after < 0.6 * before
    assert stored["refinement"]["kept"] and stored["source_file"] == "photo.jpg"
    assert stored["control_points"].shape == (4, 4)
    assert stored["residuals_scan_px"].shape == (4,)

    with open_dataset(scene.dataset) as ds:
        got = ds.photo_rgb.astype(float)
    truth = scene.aligned_rgb.astype(float)
    # the camera's lighting gradient and JPEG stay in the colours; the pattern must match
    for c in range(3):
        assert np.corrcoef(got[..., c].ravel(), truth[..., c].ravel())[0, 1] > 0.97
    with Image.open(check) as im:
        assert im.format == "PNG" and im.width > 3 * im.height


def test_refinement_recovers_large_click_errors_from_one_element_map(scene):
    corners = clicked_corners(scene, 12.0, seed=5)  # ~1.7 scan pixels off
    result = register.register(scene.photo, scene.dataset,
                               *register.corner_points(corners, SHAPE), refine="fe",
                               store=False)
    assert scene.error_px(result.clicked) > 1.0
    assert scene.error_px(result.transform) <= 0.5


def test_points_file_and_affine_from_three_points(scene, tmp_path):
    truth = scene.truth
    scan_xy = np.array([[3.0, 4.0], [40.0, 2.0], [38.0, 33.0], [5.0, 30.0], [20.0, 17.0]])
    clicks = np.array([[1.5, -1.0], [-1.0, 1.0], [0.5, 1.5], [-1.5, 0.0], [1.0, 1.0]])
    photo_xy = truth(scan_xy) + clicks
    text = "# photo_x photo_y scan_x scan_y\n" + "\n".join(
        f"{p[0]:.2f}, {p[1]:.2f}, {s[0]}, {s[1]}" for p, s in zip(photo_xy, scan_xy, strict=True))
    pxy, sxy = register.parse_points(text)
    tf = register.fit_transform(pxy, sxy, SHAPE)
    res = register.residuals(tf, pxy, sxy)
    assert res.shape == (5,) and 0 < res.max() < 1.0  # five pairs: the residuals mean something
    assert scene.error_px(tf) < 0.5
    affine = register.fit_transform(pxy[:3], sxy[:3], SHAPE)
    assert np.allclose(affine.params[2], [0, 0, 1])
    assert scene.error_px(affine) < 1.5  # an affine cannot follow the perspective


def test_resampling_averages_the_footprint_not_the_nearest_pixel():
    # a one-photo-pixel checkerboard, 5 photo pixels per scan pixel: each scan pixel is
    # grey; sampling the nearest photo pixel would give black or white
    board = (np.indices((200, 200)).sum(axis=0) % 2).astype(np.float32)
    image = np.repeat(board[..., None], 3, axis=2)
    tf = ProjectiveTransform(matrix=np.array([[5.0, 0.3, 20], [-0.3, 5.0, 20],
                                                       [0, 0, 1]]))
    grey = photo.Resampler((30, 30), photo.scale_of(tf, (30, 30)))(image, tf)
    assert np.all(np.abs(grey - 0.5) < 0.05)
    spot = photo.Resampler((30, 30), 5.0, spot_px=1.5, block_rows=7)(image, tf)
    assert np.all(np.abs(spot - 0.5) < 0.02)
    fine = ProjectiveTransform(matrix=np.diag([20.0, 20.0, 1.0]))  # finer than 12 samples
    grey = photo.Resampler((9, 9), photo.scale_of(fine, (9, 9)))(image, fine)
    assert np.all(np.abs(grey - 0.5) < 0.05)


def test_reads_16_bit_tiff_and_png(tmp_path):
    import tifffile

    img = np.zeros((8, 10, 3), dtype=np.uint16)
    img[..., 0] = 65535
    tifffile.imwrite(tmp_path / "p.tif", img)
    lin = photo.read_photo(tmp_path / "p.tif")
    assert lin.shape == (8, 10, 3) and lin[..., 0].min() == 1.0 and lin[..., 1].max() == 0.0
    Image.fromarray(np.full((4, 5), 128, np.uint8)).save(tmp_path / "g.png")  # greyscale
    assert photo.read_photo(tmp_path / "g.png")[0, 0] == pytest.approx(0.2158, abs=1e-3)
