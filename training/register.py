"""Register a camera photograph to a scan and store it as the dataset's photograph.

    python -m training.register PHOTO DATASET --corners x0,y0 x1,y1 x2,y2 x3,y3
    python -m training.register PHOTO DATASET --points pairs.txt --refine all --check c.png

The user gives control points: pairs of photo pixel <-> scan pixel (a text file, one pair
a line: `photo_x photo_y scan_x scan_y`, commas or blanks, `#` comments), or the scan
area's four outer corners in the photo (top-left, top-right, bottom-right, bottom-left of
the scan as stored, row 0 at the top; the outer edges of the corner pixels, half a pixel
beyond their centres). Pixel coordinates are (x = column, y = row) with
pixel centres at integers. Four or more pairs give a projective transform (a camera
looking at a flat panel), exactly three an affine one. `--refine` then moves it to fit
images the scan itself gives (`training.align`; `all`, or a dense map such as Fe or Pb,
works best). The photograph is averaged over each scan
pixel's footprint (`training.photo`) and stored in `photo_rgb`, with the transform, the
control points and their residuals in its attributes (`read_registration`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from skimage.transform import AffineTransform, ProjectiveTransform

from proto.dataset import DatasetError, open_dataset
from training import align, photo

TRANSFORM_DEFINITION = ("3x3 homogeneous matrix mapping scan pixel (x, y) to photograph pixel "
                        "(x, y); x = column, y = row, pixel centres at integers")
MIN_TRIANGLE = 0.02  # triangle area / longest side^2 below this: three points on a line


class RegistrationError(ValueError):
    """Control points or a transform that cannot register the photograph (one line)."""


@dataclass
class Registration:
    transform: ProjectiveTransform  # scan (x, y) -> photo (x, y), the one used
    clicked: ProjectiveTransform  # from the control points alone
    photo_xy: np.ndarray  # (N, 2) control points in the photograph
    scan_xy: np.ndarray  # (N, 2) the same points in the scan
    residuals_px: np.ndarray  # (N,) scan pixels, control points against `transform`
    rgb: np.ndarray  # (H, W, 3) uint8 sRGB on the scan grid
    refinement: dict = field(default_factory=dict)


def parse_points(text: str) -> tuple[np.ndarray, np.ndarray]:
    """`photo_x photo_y scan_x scan_y` per line -> (photo_xy, scan_xy), each (N, 2)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        try:
            values = [float(v) for v in line]
        except ValueError as exc:
            raise RegistrationError(f"points line {n}: not numbers: {' '.join(line)}") from exc
        if len(values) != 4 or not np.all(np.isfinite(values)):
            raise RegistrationError(f"points line {n}: need 4 finite numbers "
                                    "(photo_x photo_y scan_x scan_y), got {len(values)}")
        rows.append(values)
    pts = np.array(rows, dtype=float).reshape(-1, 4)
    return pts[:, :2], pts[:, 2:]


def corner_points(corners: list[str] | np.ndarray, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The scan area's four corners in the photo ('x,y' strings or (4, 2)) -> point pairs."""
    if not isinstance(corners, np.ndarray):
        try:
            corners = np.array([[float(v) for v in c.split(",")] for c in corners])
        except ValueError as exc:
            raise RegistrationError(f"corners must be x,y numbers, got {corners}") from exc
    if corners.shape != (4, 2) or not np.all(np.isfinite(corners)):
        raise RegistrationError(f"need exactly 4 corners as x,y, got {len(corners)}")
    return np.asarray(corners, dtype=float), align.scan_corners(shape)


def _check_spread(xy: np.ndarray, where: str, projective: bool) -> None:
    """Three points on a line (or two on one spot) leave the transform undetermined."""
    triples = itertools.combinations(range(len(xy)), 3)
    ok = 0
    for i, j, k in triples:
        a, b, c = xy[i], xy[j], xy[k]
        area = 0.5 * abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
        side = max(np.sum((b - a) ** 2), np.sum((c - a) ** 2), np.sum((c - b) ** 2))
        if side > 0 and area / side >= MIN_TRIANGLE:
            ok += 1
        elif projective and len(xy) == 4:
            raise RegistrationError(f"degenerate control points: {where} points "
                                    f"{i + 1}, {j + 1}, {k + 1} lie on a line")
    if ok == 0:
        raise RegistrationError(f"degenerate control points: the {where} points lie on a line")


def fit_transform(photo_xy: np.ndarray, scan_xy: np.ndarray, shape: tuple[int, int]
                  ) -> ProjectiveTransform:
    """Scan -> photo transform from control-point pairs: projective from >= 4, affine
    from 3. Raises RegistrationError for too few, degenerate or folding points."""
    photo_xy, scan_xy = np.asarray(photo_xy, float), np.asarray(scan_xy, float)
    n = len(photo_xy)
    if n != len(scan_xy):
        raise RegistrationError(f"{n} photo points but {len(scan_xy)} scan points")
    if n < 3:
        raise RegistrationError(f"need at least 3 control-point pairs, got {n}")
    h, w = shape
    out = np.nonzero(np.any((scan_xy < -1.5) | (scan_xy > [w + 0.5, h + 0.5]), axis=1))[0]
    if len(out):  # a pixel beyond the scan's edge: columns swapped, or another scan's points
        x, y = scan_xy[out[0]]
        raise RegistrationError(f"scan point {out[0] + 1} ({x:g}, {y:g}) is outside the "
                                f"{w} x {h} scan")
    projective = n >= 4
    _check_spread(scan_xy, "scan", projective)
    _check_spread(photo_xy, "photo", projective)
    kind = ProjectiveTransform if projective else AffineTransform
    tf = kind.from_estimate(scan_xy, photo_xy)
    if not tf or not np.all(np.isfinite(tf.params)):
        raise RegistrationError(f"cannot fit a transform to these points (in the wrong "
                                f"order?): {tf}")
    check_transform(tf, shape)
    return ProjectiveTransform(matrix=tf.params)


def check_transform(tf: ProjectiveTransform, shape: tuple[int, int]) -> None:
    """A homography folds where its denominator changes sign: the photo would be seen
    from behind across the scan area (e.g. two corners given in swapped order)."""
    corners = align.scan_corners(shape)
    m = tf.params
    denom = corners @ m[2, :2] + m[2, 2]
    det = np.linalg.det(m)
    if not (np.all(denom > 0) or np.all(denom < 0)) or abs(det) < 1e-12:
        raise RegistrationError("the transform folds the scan area (points in the wrong "
                                "order or a corner swapped?)")


def residuals(tf: ProjectiveTransform, photo_xy: np.ndarray, scan_xy: np.ndarray) -> np.ndarray:
    """Distance, in scan pixels, between each scan point and its photo point mapped back."""
    return np.linalg.norm(tf.inverse(photo_xy) - scan_xy, axis=1)


def register(
    photo_path: str | os.PathLike, dataset: str | os.PathLike, photo_xy: np.ndarray,
    scan_xy: np.ndarray, *, refine: str = "none", spot_px: float | None = None,
    check: str | os.PathLike | None = None, store: bool = True,
) -> Registration:
    """Fit, optionally refine, resample and (with `store`) write the photograph into the
    dataset. `spot_px`: beam FWHM in scan pixels (None: from the dataset, 0: pixel area).
    `refine`: references for `training.align.parse_references` ('none', 'all', 'fe,pb')."""
    photo_xy, scan_xy = np.asarray(photo_xy, float), np.asarray(scan_xy, float)
    with open_dataset(dataset) as ds:
        shape = ds.shape[:2]
        # 'all' leaves out lines beyond the detector's range; a named one must be there
        images = align.reference_images(ds, align.parse_references(refine),
                                        strict=refine.strip().lower() != "all")
        names, references = list(images), list(images.values())
        if spot_px is None:
            spot_px = photo.spot_px_of(ds.scan, ds.instrument)
    image = photo.read_photo(photo_path)
    clicked = fit_transform(photo_xy, scan_xy, shape)
    scale = photo.scale_of(clicked, shape)
    resampler = photo.Resampler(shape, scale, spot_px)
    corner = photo.outside(clicked, shape, image.shape)
    if corner is not None:
        ph, pw = image.shape[:2]
        raise RegistrationError(f"the scan area falls outside the {pw} x {ph} photograph (a "
                                f"corner maps to {corner[0]:.0f}, {corner[1]:.0f}); check the "
                                "control points")
    tf, info = clicked, {"method": "none"}
    if references:
        ref = align.refine(image, clicked, references, scale, spot_px)
        tf = ref.transform
        info = {"method": "polynomial-colour R2, least squares", "references": list(names),
                "r2_before": ref.r2_before, "r2_after": ref.r2_after,
                "moved_px": ref.moved_px, "sigma_px": ref.sigma_px, "kept": ref.kept,
                "note": ref.note}
    linear = resampler(image, tf)
    result = Registration(tf, clicked, photo_xy, scan_xy, residuals(tf, photo_xy, scan_xy),
                          photo.to_srgb8(linear), info)
    if store:
        photo.store_photo(dataset, result.rgb, {
            "source_file": Path(photo_path).name,  # a name, never this machine's path
            "transform": tf.params, "transform_definition": TRANSFORM_DEFINITION,
            "control_points": np.column_stack([result.photo_xy, result.scan_xy]),
            "control_points_columns": "photo_x, photo_y, scan_x, scan_y",
            "residuals_scan_px": result.residuals_px,
            "footprint": f"scan pixel area blurred by a Gaussian beam of FWHM {spot_px:g} "
                         "scan pixels, averaged in linear light",
            "refinement": json.dumps(info),
        })
    if check is not None:
        reference = matched = None
        if references:
            k, matched = align.best_match(linear, references)
            reference = references[k]
        photo.check_picture(image, tf, linear, result.photo_xy, check, reference, matched)
    return result


def read_registration(dataset: str | os.PathLike) -> dict | None:
    """The stored registration of a dataset's photograph; None if it has none (a simulated
    scene's photograph is aligned by construction)."""
    with h5py.File(dataset, "r") as f:
        node = f.get("photo_rgb")
        if node is None or "transform" not in node.attrs:
            return None
        out = {k: node.attrs[k] for k in node.attrs}
    out["refinement"] = json.loads(out.get("refinement", "{}"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.register", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", help="photograph (JPEG, PNG or TIFF)")
    p.add_argument("dataset", help="dataset file (.h5) to store the registered photograph in")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--points", help="text file of control points: photo_x photo_y scan_x "
                                      "scan_y per line")
    how.add_argument("--corners", nargs=4, metavar="X,Y",
                     help="the scan area's corners in the photo: top-left, top-right, "
                          "bottom-right, bottom-left")
    p.add_argument("--refine", nargs="?", const="all", default="none", metavar="REFS",
                   help="refine the transform against images of the scan, comma-separated: "
                        f"{', '.join(align.REFERENCES)} (total counts or an element's ROI "
                        "map), or all (the default when REFS is left out; recommended); "
                        "without --refine the control points alone decide")
    p.add_argument("--spot-px", type=float, default=None,
                   help="beam FWHM in scan pixels (default: from the dataset; 0: pixel area)")
    p.add_argument("--check", help="write a check picture (PNG) here")
    args = p.parse_args(argv)
    try:
        if args.points:
            photo_xy, scan_xy = parse_points(Path(args.points).read_text())
        else:
            with open_dataset(args.dataset) as ds:
                shape = ds.shape[:2]
            photo_xy, scan_xy = corner_points(args.corners, shape)
        result = register(args.photo, args.dataset, photo_xy, scan_xy, refine=args.refine,
                          spot_px=args.spot_px, check=args.check)
    except (RegistrationError, photo.PhotoError, DatasetError, OSError, ValueError) as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 2
    ref, n = result.refinement, len(result.photo_xy)
    line = (f"registered {Path(args.photo).name} -> {args.dataset}: {n} control points, "
            f"residual max {result.residuals_px.max():.2f} scan px")
    if ref["method"] == "none" and n <= 4:
        line += " (exactly determined)"
    if ref["method"] != "none":
        line += (f"; refined on {','.join(ref['references'])}: R2 {ref['r2_before']:.3f} -> "
                 f"{ref['r2_after']:.3f}, moved {ref['moved_px']:.2f} px ({ref['note']})")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
