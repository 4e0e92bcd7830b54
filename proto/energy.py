"""Energy calibration and the one rebinning function every layer uses.

Channel i is centred on ``offset + gain * i`` keV and spans half a gain either
side (the PyMca and Bruker convention). Rebinning spreads each source channel's
counts over the target channels it overlaps, in proportion to the overlap, so
total counts are conserved wherever the target grid lies inside the source.
Training and the edge both call `Rebinner`, so a model sees the same numbers
live as it saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EnergyGrid:
    offset: float  # keV at the centre of channel 0
    gain: float  # keV per channel
    channels: int

    def __post_init__(self) -> None:
        if not (self.gain > 0 and np.isfinite(self.gain) and np.isfinite(self.offset)):
            raise ValueError(f"energy grid needs a finite positive gain, got {self}")
        if self.channels < 1:
            raise ValueError(f"energy grid needs at least one channel, got {self.channels}")

    @property
    def low(self) -> float:
        """Lower edge of the first channel, keV."""
        return self.offset - 0.5 * self.gain

    @property
    def high(self) -> float:
        """Upper edge of the last channel, keV."""
        return self.offset + (self.channels - 0.5) * self.gain

    def edges(self) -> np.ndarray:
        return self.low + self.gain * np.arange(self.channels + 1, dtype=np.float64)

    def centres(self) -> np.ndarray:
        return self.offset + self.gain * np.arange(self.channels, dtype=np.float64)

    def channel(self, energy_kev: float) -> float:
        """Fractional channel index of an energy."""
        return (energy_kev - self.offset) / self.gain

    def covers(self, other: EnergyGrid, tolerance_kev: float = 1e-9) -> bool:
        """Whether this grid spans every energy of `other` (so rebinning loses nothing)."""
        return self.low <= other.low + tolerance_kev and self.high >= other.high - tolerance_kev

    def to_dict(self) -> dict[str, float | int]:
        return {"offset": self.offset, "gain": self.gain, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict) -> EnergyGrid:
        return cls(float(d["offset"]), float(d["gain"]), int(d["channels"]))


class Rebinner:
    """Counts on `source` -> counts on `target`, for a batch of spectra.

    Works on the cumulative sum: the counts below each target edge are read off
    the source's cumulative counts by linear interpolation inside the source
    channel holding that edge, then differenced. O(C + D) per spectrum with
    index tables precomputed once per pair of grids.
    """

    def __init__(self, source: EnergyGrid, target: EnergyGrid) -> None:
        self.source, self.target = source, target
        position = np.clip((target.edges() - source.low) / source.gain, 0.0, source.channels)
        self._index = np.minimum(np.floor(position).astype(np.intp), source.channels - 1)
        self._frac = (position - self._index).astype(np.float64)
        self._identity = source == target

    def __call__(self, counts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rebin (N, C) or (C,) counts; returns float32 (N, D) or (D,)."""
        counts = np.asarray(counts)
        single = counts.ndim == 1
        batch = counts.reshape(1, -1) if single else counts
        if batch.shape[1] != self.source.channels:
            raise ValueError(
                f"spectra have {batch.shape[1]} channels, grid expects {self.source.channels}"
            )
        if out is None:
            out = np.empty((batch.shape[0], self.target.channels), dtype=np.float32)
        if self._identity:
            np.copyto(out, batch, casting="unsafe")
        else:
            cumulative = np.zeros((batch.shape[0], self.source.channels + 1), dtype=np.float64)
            np.cumsum(batch, axis=1, dtype=np.float64, out=cumulative[:, 1:])
            below = cumulative[:, self._index]
            below += (cumulative[:, self._index + 1] - below) * self._frac
            np.subtract(below[:, 1:], below[:, :-1], out=out, casting="unsafe")
        return out[0] if single else out


def rebin(counts: np.ndarray, source: EnergyGrid, target: EnergyGrid) -> np.ndarray:
    """One-off convenience over `Rebinner` (build a Rebinner on hot paths)."""
    return Rebinner(source, target)(counts)


def counts_per_live_second(
    counts: np.ndarray, live_time_s: np.ndarray | float, rebinner: Rebinner
) -> np.ndarray:
    """The models' input quantity: counts rebinned onto the model grid per live second."""
    rates = rebinner(counts)
    live = np.asarray(live_time_s, dtype=np.float32)
    if np.any(~(live > 0)):
        raise ValueError("live time must be positive to express counts per live second")
    rates /= live.reshape(-1, 1) if rates.ndim == 2 else live
    return rates
