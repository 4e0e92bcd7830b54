"""Counting: dead time, pile-up and Poisson noise for a batch of pixels.

Dead time is non-paralysable with a fixed time per processed event (instrument
.dead_time_s): with input rate n (counts/s over the whole spectrum) the live
time of a pixel is real / (1 + n tau), so live < real at high rates and the
spectrum still holds n counts per live second. Pile-up: two photons closer
than the pulse-pair resolving time t_pp give one count at the sum energy, so
the expected spectrum becomes r - 2 t_pp n r + t_pp (r * r), with (r * r) the
self-convolution on the energy axis (sum peaks of the strongest lines and
their cross terms; counts above the last channel are lost). Then Poisson.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from training.sim.instruments import Instrument

CHUNK = 1024
FFT_WORKERS = 2  # the 2-core budget of PLAN.md


@dataclass(frozen=True)
class Acquisition:
    counts: np.ndarray  # (N, C) uint16 when every count fits, else uint32
    live_time_s: np.ndarray  # (N,) float64
    real_time_s: np.ndarray  # (N,) float64


def live_time(real_s: np.ndarray, input_rate: np.ndarray, inst: Instrument) -> np.ndarray:
    return real_s / (1.0 + input_rate * inst.dead_time_s)


def pileup_spectrum(rates: np.ndarray, inst: Instrument) -> np.ndarray:
    """(N, C) expected rates after pile-up (float64): losses from pairs + sum counts."""
    n_pix, c = rates.shape
    t_pp = inst.pulse_pair_s
    total = rates.sum(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * c)))
    # float32 FFT: the sum spectrum is a ~1e-2 correction, single precision is plenty
    spec = scipy.fft.rfft(rates.astype(np.float32), n=size, axis=1, workers=FFT_WORKERS)
    spec *= spec
    conv = scipy.fft.irfft(spec, n=size, axis=1, workers=FFT_WORKERS)[:, : 2 * c - 1]
    np.maximum(conv, 0.0, out=conv)
    # channel i + j holds E_i + E_j = 2 offset + gain (i + j); channel k of E is (E-offset)/gain
    shift = -inst.grid.offset / inst.grid.gain  # sum channel k = (i + j) + offset/gain
    base = int(np.floor(shift))
    frac = shift - base
    summed = np.zeros((n_pix, c), dtype=np.float32)
    # conv index m lands at channel m - shift: split between m - base and m - base - 1
    for weight, delta in ((1.0 - frac, base), (frac, base + 1)):
        if weight == 0.0:
            continue
        lo_m = max(delta, 0)
        hi_m = min(c + delta, conv.shape[1])
        if hi_m > lo_m:
            summed[:, lo_m - delta : hi_m - delta] += weight * conv[:, lo_m:hi_m]
    return rates * (1.0 - 2.0 * t_pp * total) + t_pp * summed


def acquire(
    rates: np.ndarray,
    dwell_s: float | np.ndarray,
    rng: np.random.Generator,
    instrument: Instrument,
    *,
    pileup: bool = True,
) -> Acquisition:
    """Expected counts/s (N, C) -> a measured batch; dwell is the real time per pixel."""
    rates = np.atleast_2d(np.asarray(rates, dtype=np.float64))
    if rates.shape[1] != instrument.grid.channels:
        raise ValueError(f"rates have {rates.shape[1]} channels, instrument has "
                         f"{instrument.grid.channels}")
    if np.any(rates < 0) or not np.all(np.isfinite(rates)):
        raise ValueError("rates must be finite and non-negative")
    n = rates.shape[0]
    real = np.broadcast_to(np.asarray(dwell_s, dtype=np.float64), (n,)).copy()
    live = live_time(real, rates.sum(axis=1), instrument)
    counts = np.empty(rates.shape, dtype=np.uint32)
    for start in range(0, n, CHUNK):
        sl = slice(start, min(start + CHUNK, n))
        expected = pileup_spectrum(rates[sl], instrument) if pileup else rates[sl]
        expected = np.maximum(expected, 0.0) * live[sl, None]
        counts[sl] = rng.poisson(expected)
    if counts.size and counts.max() <= np.iinfo(np.uint16).max:
        counts = counts.astype(np.uint16)
    return Acquisition(counts, live, real)
