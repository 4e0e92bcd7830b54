"""Which pixels of a lab's scans train a model and which judge it (the study's protocol).

The study trained on one area of the icon and tested on another. Here the held-out area is
one of:

* whole scans (`tests`): the study's protocol as it was, another area scanned separately;
* a rectangle of the first training scan that the user names (`x0,y0,w,h` in scan pixels,
  x = column, y = row, as `python -m training.register` counts them);
* automatic: the last scan given when there are several, else the last quarter of the
  first scan along its longer axis.

A rectangle never touches training: the pixels within `gap` of it are used by neither side,
where `gap` is the reach of a pixel's footprint (the beam spot's Gaussian, cut at 3 sigma as
the registration's resampling cuts it), so no training spectrum or colour saw the held-out
paint. Pixels never acquired (no live time) are in neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.data import Scene

FWHM_PER_SIGMA = 2.3548
AUTO_FRACTION = 0.25  # held out by the automatic split of one scan
MIN_TRAIN, MIN_TEST = 20, 10  # pixels


class SplitError(ValueError):
    """A held-out area that cannot be used (one line, says what to do)."""


@dataclass(frozen=True)
class Rect:
    x0: int
    y0: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Rect:
        try:
            x0, y0, w, h = (int(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise SplitError(f"--held-out must be x0,y0,w,h in whole scan pixels, got "
                             f"{text!r}") from None
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0:
            raise SplitError(f"--held-out {text}: needs x0, y0 >= 0 and w, h > 0")
        return cls(x0, y0, w, h)

    def mask(self, shape: tuple[int, int], grow: int = 0) -> np.ndarray:
        """(H, W) bool: the rectangle, grown by `grow` pixels on every side."""
        out = np.zeros(shape, bool)
        out[max(0, self.y0 - grow):self.y0 + self.h + grow,
            max(0, self.x0 - grow):self.x0 + self.w + grow] = True
        return out

    def text(self) -> str:
        return f"{self.x0},{self.y0},{self.w},{self.h}"


@dataclass
class Part:
    """The pixels of one scan on each side (flat indices into scene.rates)."""

    scene: Scene
    train: np.ndarray
    test: np.ndarray
    area: str  # how the held-out pixels were chosen, in words

    @property
    def acquired(self) -> np.ndarray:
        return acquired(self.scene)


def acquired(scene: Scene) -> np.ndarray:
    """(N,) bool: pixels with a spectrum and a colour (live time > 0, finite rates)."""
    ok = np.isfinite(scene.rates).all(axis=1) & (scene.rates.sum(axis=1) > 0)
    if scene.photo is not None:
        ok &= np.isfinite(scene.photo).all(axis=1)
    return ok


def gap_px(spot_px: float) -> int:
    """Pixels around a held-out rectangle left out of training: a pixel's footprint reaches
    3 sigma of the beam beyond its own square (at least one pixel, for the camera's blur)."""
    return max(1, math.ceil(3 * max(spot_px, 0.0) / FWHM_PER_SIGMA))


def auto_rect(shape: tuple[int, int], fraction: float = AUTO_FRACTION) -> Rect:
    """The last `fraction` of a scan along its longer axis (bottom rows or right columns)."""
    h, w = shape
    if h >= w:
        n = max(1, round(h * fraction))
        return Rect(0, h - n, w, n)
    n = max(1, round(w * fraction))
    return Rect(w - n, 0, n, h)


def split(train: list[Scene], tests: list[Scene], held_out: Rect | None, spot_px: list[float]
          ) -> list[Part]:
    """Parts for `train` scans (with `tests` whole scans held out, or `held_out` of the first
    training scan, or the automatic split); `spot_px`: beam FWHM in pixels per train scan."""
    if held_out is not None and tests:
        raise SplitError("give either --held-out (an area of the first scan) or --test "
                         "scans, not both")
    if held_out is None and not tests:
        if len(train) > 1:
            train, tests = train[:-1], train[-1:]
            spot_px = spot_px[:-1]
        else:
            held_out = auto_rect(train[0].shape)
    parts = [Part(s, np.flatnonzero(acquired(s)), np.zeros(0, np.int64), "training scan")
             for s in train]
    if held_out is not None:
        first = parts[0]
        h, w = first.scene.shape
        r = held_out
        if r.x0 + r.w > w or r.y0 + r.h > h:
            raise SplitError(f"--held-out {r.text()} reaches beyond the {w} x {h} scan "
                             f"{first.scene.name} (x0 + w <= {w}, y0 + h <= {h})")
        gap = gap_px(spot_px[0])
        ok = acquired(first.scene)
        inside, near = r.mask((h, w)).ravel(), r.mask((h, w), gap).ravel()
        first.train, first.test = np.flatnonzero(ok & ~near), np.flatnonzero(ok & inside)
        first.area = (f"rectangle x0,y0,w,h = {r.text()} of {first.scene.name}; {gap} px "
                      "around it used by neither side")
    parts += [Part(s, np.zeros(0, np.int64), np.flatnonzero(acquired(s)), "whole scan")
              for s in tests]
    n_train = sum(len(p.train) for p in parts)
    n_test = sum(len(p.test) for p in parts)
    if n_train < MIN_TRAIN:
        margin = "" if held_out is None else (
            f" beside the held-out rectangle and the {gap} px kept out around it (the "
            f"footprint of a {spot_px[0]:.3g} px beam)")
        raise SplitError(f"only {n_train} training pixels left (need {MIN_TRAIN}){margin}: "
                         "make the held-out area smaller or add scans")
    if n_test < MIN_TEST:
        raise SplitError(f"only {n_test} held-out pixels (need {MIN_TEST}): make the "
                         "held-out area larger")
    return parts


def gather(parts: list[Part], side: str) -> tuple[np.ndarray, np.ndarray]:
    """(rates (N, D), colours (N, 3)) of every part's `side` ("train" or "test") pixels."""
    idx = [(p.scene, getattr(p, side)) for p in parts]
    rates = np.concatenate([s.rates[i] for s, i in idx]).astype(np.float32)
    rgb = np.concatenate([s.photo[i] for s, i in idx]).astype(np.float32)
    return rates, rgb
