"""A small painted panel, scanned and photographed, for the registration tests.

The panel is a fine raster (RASTER samples per scan pixel) of flat pigment patches, in
scan coordinates, reaching MARGIN scan pixels beyond the scan area. The scan averages each
pixel's square: colour (the perfectly aligned photograph) and element concentrations,
whose Ca/Fe/Cu/Hg/Pb lines make the spectra (Poisson counts). The camera sees the panel
through a known projective transform (about SCALE photo pixels per scan pixel, a few
degrees of rotation, mild perspective, a crop with some panel around the scan area),
integrates each camera pixel, under a lighting gradient, and saves a JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.transform import ProjectiveTransform, warp

from proto.dataset import write_dataset
from proto.energy import EnergyGrid
from training.pigments import linear_to_srgb, srgb_to_linear

HEIGHT, WIDTH = 36, 44  # scan pixels
RASTER, MARGIN, SCALE = 10, 6, 5.0
GRID = EnergyGrid(0.0, 0.02, 1024)
# name: (sRGB 0..255, {element: concentration}); lines: element -> ((keV, relative), ...)
PIGMENTS = {
    "gesso": ((236, 230, 214), {"Ca": 1.0}),
    "lead_white": ((240, 238, 230), {"Pb": 1.0, "Ca": 0.2}),
    "red_ochre": ((150, 62, 40), {"Fe": 1.0, "Ca": 0.3}),
    "yellow_ochre": ((200, 160, 70), {"Fe": 0.6, "Ca": 0.3}),
    "vermilion": ((205, 45, 35), {"Hg": 1.0, "Pb": 0.3}),
    "azurite": ((40, 80, 160), {"Cu": 1.0, "Pb": 0.2}),
    "umber": ((80, 58, 40), {"Fe": 0.8, "Pb": 0.1}),
    "flesh": ((215, 160, 130), {"Pb": 0.7, "Hg": 0.2, "Fe": 0.1}),
}
LINES = {"Ca": ((3.69, 1.0),), "Fe": ((6.40, 1.0), (7.06, 0.15)),
         "Cu": ((8.05, 1.0), (8.90, 0.15)), "Hg": ((9.99, 1.0), (11.82, 0.6)),
         "Pb": ((10.55, 1.0), (12.61, 0.6))}


@dataclass
class Scene:
    dataset: Path
    photo: Path
    truth: ProjectiveTransform  # scan (x, y) -> photo (x, y)
    aligned_rgb: np.ndarray  # (H, W, 3) uint8, the photograph a perfectly aligned camera gives

    def error_px(self, estimate: ProjectiveTransform) -> float:
        """Mean distance, in scan pixels, between where `estimate` and the truth put each
        scan pixel centre (measured back in the scan through the true transform)."""
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        pts = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)
        return float(np.linalg.norm(self.truth.inverse(estimate(pts)) - pts, axis=1).mean())


def _panel(rng: np.random.Generator) -> np.ndarray:
    """Pigment index per raster sample: ellipses and bars on a gesso ground."""
    h, w = (HEIGHT + 2 * MARGIN) * RASTER, (WIDTH + 2 * MARGIN) * RASTER
    yy, xx = np.mgrid[0:h, 0:w] / RASTER  # scan pixels from the raster's corner
    labels = np.zeros((h, w), dtype=np.int16)
    for _ in range(22):
        k = rng.integers(1, len(PIGMENTS))
        cx, cy = rng.uniform(0, w / RASTER), rng.uniform(0, h / RASTER)
        if rng.random() < 0.6:
            rx, ry = rng.uniform(2, 8, size=2)
            labels[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1] = k
        else:
            a = rng.uniform(0, np.pi)
            u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
            v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
            labels[(np.abs(u) < rng.uniform(4, 12)) & (np.abs(v) < rng.uniform(1, 3))] = k
    return labels


def _truth_transform(rng: np.random.Generator) -> tuple[ProjectiveTransform, tuple[int, int]]:
    angle = np.deg2rad(rng.uniform(2.5, 4.0))
    c, s = np.cos(angle), np.sin(angle)
    similar = np.array([[SCALE * c, -SCALE * s, 0], [SCALE * s, SCALE * c, 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, 1, 0], [2.5e-4, -1.5e-4, 1]])  # ~5 % scale change across
    m = tilt @ similar
    corners = ProjectiveTransform(matrix=m)(
        np.array([[-0.5, -0.5], [WIDTH - 0.5, -0.5], [WIDTH - 0.5, HEIGHT - 0.5],
                  [-0.5, HEIGHT - 0.5]]))
    pad = 4.0 * SCALE  # the camera sees some panel around the scan area
    shift = np.array([[1, 0, pad - corners[:, 0].min()], [0, 1, pad - corners[:, 1].min()],
                      [0, 0, 1]])
    m = shift @ m
    size = (int(np.ceil(corners[:, 1].max() - corners[:, 1].min() + 2 * pad)),
            int(np.ceil(corners[:, 0].max() - corners[:, 0].min() + 2 * pad)))
    return ProjectiveTransform(matrix=m), size


def make_scene(out: Path, seed: int = 7, quality: int = 85) -> Scene:
    rng = np.random.default_rng(seed)
    labels = _panel(rng)
    colours = srgb_to_linear(np.array([c for c, _ in PIGMENTS.values()]) / 255.0)
    elements = sorted(LINES)
    conc = np.array([[e.get(el, 0.0) for el in elements] for _, e in PIGMENTS.values()])

    def block_mean(a: np.ndarray) -> np.ndarray:
        inner = a[MARGIN * RASTER:(MARGIN + HEIGHT) * RASTER,
                  MARGIN * RASTER:(MARGIN + WIDTH) * RASTER]
        return inner.reshape(HEIGHT, RASTER, WIDTH, RASTER, -1).mean(axis=(1, 3))

    aligned = np.round(linear_to_srgb(block_mean(colours[labels])) * 255).astype(np.uint8)
    maps = block_mean(conc[labels])  # (H, W, E)

    # spectra: continuum + Gaussian lines, Poisson counts in 0.2 s live time
    energy = GRID.centres()
    shapes = np.zeros((len(elements), GRID.channels))
    for j, el in enumerate(elements):
        for kev, rel in LINES[el]:
            shapes[j] += rel * np.exp(-0.5 * ((energy - kev) / 0.065) ** 2)
    rate = 30.0 * np.exp(-energy / 8.0) * (energy > 1.0) + 400.0 * maps @ shapes
    live = np.full((HEIGHT, WIDTH), 0.2, dtype=np.float32)
    counts = rng.poisson(rate * 0.2).astype(np.uint16)

    # the camera: integrate each camera pixel (blur), look through the transform, light
    truth, size = _truth_transform(rng)
    scene_lin = gaussian_filter(colours[labels], (0.45 * RASTER / SCALE,) * 2 + (0,))

    def to_raster(photo_xy: np.ndarray) -> np.ndarray:
        return (truth.inverse(photo_xy) + 0.5 + MARGIN) * RASTER - 0.5

    shot = warp(scene_lin, to_raster, output_shape=size, order=1, mode="edge")
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    light = 1.0 + 0.25 * (xx / size[1] - 0.5) - 0.15 * (yy / size[0] - 0.5)
    shot = linear_to_srgb(np.clip(shot * light[..., None] * 0.95, 0, 1))
    shot = shot + rng.normal(0, 0.01, shot.shape)
    out.mkdir(parents=True, exist_ok=True)
    photo = out / "photo.jpg"
    Image.fromarray(np.round(np.clip(shot, 0, 1) * 255).astype(np.uint8)).save(
        photo, quality=quality)
    dataset = write_dataset(out / "scan.h5", counts, GRID, live, live * 1.05,
                            scan={"scan_id": "register-test", "pixel_size_um": 500.0},
                            compression=None)
    return Scene(dataset, photo, truth, aligned)
