"""A simulated camera: photograph a simulated scene as a lab's camera would.

The camera of tests/register_scene.py (issue 14's registration test) for any single-panel
scene of the catalogue: the scene's painting is rendered again, with MARGIN scan pixels of
panel around the scan area (the renderer is resolution-independent, so the scan area's
samples fall exactly where the simulator's did), and photographed through a projective
transform of about `scale` photo pixels per scan pixel, 2.5-4 degrees of rotation and mild
perspective, with some panel around the scan area in the frame; each camera pixel
integrates the light (a blur), under a lighting gradient (+-12.5 % across, -+7.5 % down),
with sensor noise, saved as a JPEG. Nothing here touches the scan: the photograph is what
a lab brings to `python -m training.register`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.transform import ProjectiveTransform, warp

from training.align import scan_corners
from training.catalogue import SCENES
from training.paintings import render
from training.palettes import panel_specs
from training.pigments import linear_to_srgb

MARGIN = 6  # scan pixels of panel rendered around the scan area
SUPERSAMPLE = 3  # the scene simulator's raster (training.scenes.SUPERSAMPLE)
UPSAMPLE = 3  # each raster sample repeated UPSAMPLE x UPSAMPLE: a raster finer than the photo
EXPOSURE = 0.95  # the camera's exposure (linear gain): keeps the gradient's bright side unclipped


@dataclass
class Shot:
    photo: Path
    truth: ProjectiveTransform  # scan (x, y) -> photo (x, y)
    shape: tuple[int, int]  # the scan's (H, W)
    size: tuple[int, int] = (0, 0)  # the photograph's (h, w)

    def corners(self) -> np.ndarray:
        """The scan area's outer corners in the photograph, (4, 2): what a user clicks."""
        return self.truth(scan_corners(self.shape))

    def light_on_scan(self) -> np.ndarray:
        """(H, W) the light (exposure included) that fell on each scan pixel's centre: what a
        perfect flat-field would divide out (known only in simulation)."""
        yy, xx = np.mgrid[0:self.shape[0], 0:self.shape[1]]
        xy = self.truth(np.column_stack([xx.ravel(), yy.ravel()]).astype(float))
        return light(xy[:, 0], xy[:, 1], self.size).reshape(self.shape)

    def error_px(self, estimate: ProjectiveTransform) -> float:
        """Mean distance, in scan pixels, between where `estimate` and the truth put each
        scan pixel centre (measured back in the scan through the true transform)."""
        yy, xx = np.mgrid[0:self.shape[0], 0:self.shape[1]]
        pts = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)
        return float(np.linalg.norm(self.truth.inverse(estimate(pts)) - pts, axis=1).mean())


def scene_raster(name: str, tiny: bool = False, margin: int = MARGIN) -> tuple[np.ndarray, int]:
    """Linear-light RGB of scene `name` with `margin` scan pixels of panel around it,
    ((H + 2m) * r, (W + 2m) * r, 3), and r, raster samples per scan pixel. Averaged over each
    scan pixel's square it is the scene's own photograph (training.paintings.pixel_truth)."""
    config = SCENES[name]
    if config.n_panels != 1:
        raise ValueError(f"{name} has {config.n_panels} panels; the camera takes one panel")
    h, w = config.tiny_panel_shape if tiny else config.panel_shape
    spec = panel_specs(config)[0]
    cx, cy, ch = spec.crop
    wider = replace(spec, crop=(cx, cy, ch * (h + 2 * margin) / h))
    r = render(wider, h + 2 * margin, w + 2 * margin, SUPERSAMPLE)
    table = np.array([s.colour_linear(original=False) for s in r.stacks], dtype=np.float32)
    fine = table[r.stack_map]
    fine = np.repeat(np.repeat(fine, UPSAMPLE, axis=0), UPSAMPLE, axis=1)
    return fine, SUPERSAMPLE * UPSAMPLE


def camera_transform(shape: tuple[int, int], rng: np.random.Generator, scale: float
                     ) -> tuple[ProjectiveTransform, tuple[int, int]]:
    """Scan -> photo: rotation, scale, mild perspective, a frame with panel around the scan."""
    angle = np.deg2rad(rng.uniform(2.5, 4.0))
    c, s = np.cos(angle), np.sin(angle)
    similar = np.array([[scale * c, -scale * s, 0], [scale * s, scale * c, 0], [0, 0, 1]])
    # ~5 % scale change across a 200-photo-pixel frame, as in the registration test
    tilt = np.array([[1, 0, 0], [0, 1, 0], [2.5e-4 * 5 / scale, -1.5e-4 * 5 / scale, 1]])
    m = tilt @ similar
    corners = ProjectiveTransform(matrix=m)(scan_corners(shape))
    pad = 4.0 * scale  # the camera sees some panel around the scan area
    shift = np.array([[1, 0, pad - corners[:, 0].min()], [0, 1, pad - corners[:, 1].min()],
                      [0, 0, 1]])
    size = (int(np.ceil(corners[:, 1].max() - corners[:, 1].min() + 2 * pad)),
            int(np.ceil(corners[:, 0].max() - corners[:, 0].min() + 2 * pad)))
    return ProjectiveTransform(matrix=shift @ m), size


def light(x: np.ndarray, y: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The lamp's light at photo pixel (x, y) of a frame of `size` (h, w), in linear light:
    +-12.5 % across, -+7.5 % down, times an exposure of 0.95."""
    return EXPOSURE * (1.0 + 0.25 * (x / size[1] - 0.5) - 0.15 * (y / size[0] - 0.5))


def photograph(raster_lin: np.ndarray, raster: int, margin: int, shape: tuple[int, int],
               path: str | Path, seed: int = 0, scale: float = 5.0, quality: int = 85) -> Shot:
    """Photograph a linear-light panel raster (`raster` samples per scan pixel, `margin`
    scan pixels around a scan of `shape`) to a JPEG at `path`."""
    rng = np.random.default_rng(seed)
    truth, size = camera_transform(shape, rng, scale)
    scene = gaussian_filter(raster_lin, (0.45 * raster / scale,) * 2 + (0,))

    def to_raster(photo_xy: np.ndarray) -> np.ndarray:
        return (truth.inverse(photo_xy) + 0.5 + margin) * raster - 0.5

    shot = warp(scene, to_raster, output_shape=size, order=1, mode="edge")
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    shot = linear_to_srgb(np.clip(shot * light(xx, yy, size)[..., None], 0, 1))
    shot = shot + rng.normal(0, 0.01, shot.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(shot, 0, 1) * 255).astype(np.uint8)).save(
        path, quality=quality)
    return Shot(path, truth, shape, size)


def photograph_scene(name: str, path: str | Path, tiny: bool = False, seed: int = 0,
                     scale: float = 5.0) -> Shot:
    """Photograph simulated scene `name` (its tiny variant with `tiny`) to `path`."""
    fine, r = scene_raster(name, tiny)
    h, w = fine.shape[0] // r - 2 * MARGIN, fine.shape[1] // r - 2 * MARGIN
    return photograph(fine, r, MARGIN, (h, w), path, seed, scale)


def clicked(shot: Shot, error_px: float, seed: int = 0) -> np.ndarray:
    """The scan area's corners in the photo as a hurried user clicks them: each 0.6-1 x
    `error_px` photo pixels off in a random direction."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, 4)
    dist = error_px * rng.uniform(0.6, 1.0, 4)
    return shot.corners() + np.column_stack([np.cos(angle), np.sin(angle)]) * dist[:, None]
