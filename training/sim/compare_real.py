"""Realism check: the simulator against the real M6 Jetstream spectrum.

    python -m training.sim.compare_real --out out/data/realism.png

The real file (rosettasciio test data, see ../shared/data/README.md) is one
28.05 s live spectrum of a Ca/P-rich (bone-like) object at Rh 50 kV, 199 uA,
He flush. We simulate the same pixel with `M6_JETSTREAM` under those
conditions and compare peak positions, the Ca K-alpha width and the shape of
the spectrum in energy bands.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from proto.energy import EnergyGrid
from training.sim.acquire import acquire
from training.sim.instruments import M6_JETSTREAM
from training.sim.materials import Layer
from training.sim.response import stack_response
from training.sim.xsec import compton_energy

REAL_FILE = "bruker_m6_jetstream_example.spx"
REAL_CONDITIONS = M6_JETSTREAM.with_(current_ua=199.0, atmosphere="He")
REAL_LIVE_S, REAL_REAL_S = 28.046, 30.0

# The real object's spectrum: strong Ca, weak P (P/Ca far below bone's), a strong
# light-element scatter continuum and traces of K, Sr, Zn, Fe, Pb. Modelled as chalk
# with some bone mineral in a thick organic (collagen/binder-like) matrix; the
# mass fractions were tuned on the Ca, P and trace peaks against the scatter.
SAMPLE = Layer.mix(
    [
        ("CaCO3", 0.13),
        ("Ca10(PO4)6(OH)2", 0.25),
        ("C5H9NO2", 0.565),  # collagen-like organic matrix
        ("H2O", 0.06),
        ("SrCO3", 0.0006),
        ("ZnO", 0.00018),
        ("Fe2O3", 0.00025),
        ("PbCO3", 0.00015),
        ("K2CO3", 0.002),
    ],
    density_g_cm3=1.5,
    thickness_cm=1.0,
)
BANDS_KEV = ((3.0, 6.0), (6.0, 12.0), (12.0, 20.0))
# windows between the main peaks: the continuum (scatter) shape alone
CONTINUUM_BANDS_KEV = ((4.4, 6.2), (6.6, 8.4), (8.8, 10.3), (10.8, 13.9), (14.5, 18.0))


def real_path() -> Path:
    return Path(__file__).resolve().parents[3] / "shared" / "data" / REAL_FILE


def load_real(path: Path | None = None) -> tuple[np.ndarray, EnergyGrid, float, float]:
    from rsciio.bruker import file_reader

    path = path or real_path()
    sig = file_reader(str(path))[0]
    axis = sig["axes"][0]
    hw = sig["original_metadata"]["Hardware"]
    grid = EnergyGrid(float(axis["offset"]), float(axis["scale"]), int(axis["size"]))
    return (np.asarray(sig["data"], dtype=np.float64), grid,
            hw["LifeTime"] / 1e3, hw["RealTime"] / 1e3)


def simulate(seed: int | None = 0, noise: bool = True) -> np.ndarray:
    """Counts of the simulated M6 pixel under the real file's conditions."""
    resp = stack_response(REAL_CONDITIONS, [SAMPLE])
    if not noise:
        return resp.rates * REAL_LIVE_S
    rng = np.random.default_rng(seed)
    # dwell chosen so the simulated live time equals the real one
    dwell = REAL_LIVE_S * (1 + resp.total_rate * REAL_CONDITIONS.dead_time_s)
    acq = acquire(resp.rates[None], dwell, rng, REAL_CONDITIONS)
    return acq.counts[0].astype(np.float64)


@dataclass(frozen=True)
class Peak:
    centre_kev: float
    fwhm_ev: float
    channel: float


def fit_peak(
    counts: np.ndarray, grid: EnergyGrid, near_kev: float, half_kev: float, quadratic: bool = False
) -> Peak:
    """Gaussian + linear (or quadratic) background fitted within +-half_kev of near_kev."""
    e = grid.centres()
    sel = np.abs(e - near_kev) <= half_kev
    x, y = e[sel], counts[sel]

    def model(x, a, mu, s, b0, b1, b2):
        d = x - near_kev
        return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + b0 + b1 * d + b2 * d * d

    p0 = (max(y.max() - y.min(), 1.0), x[np.argmax(y)], 0.06, max(y.min(), 0.0), 0.0, 0.0)
    bounds = (-np.inf, np.inf)
    if not quadratic:  # pin the curvature at 0
        bounds = ([-np.inf] * 5 + [-1e-12], [np.inf] * 5 + [1e-12])
    popt, _ = curve_fit(model, x, y, p0=p0, bounds=bounds, maxfev=20000)
    mu, s = popt[1], abs(popt[2])
    return Peak(float(mu), float(2.3548 * s * 1e3), float(grid.channel(mu)))


def band_fractions(counts: np.ndarray, grid: EnergyGrid, bands) -> np.ndarray:
    e = grid.centres()
    sums = np.array([counts[(e >= lo) & (e < hi)].sum() for lo, hi in bands])
    return sums / sums.sum()


def compare(real: np.ndarray, sim: np.ndarray, grid: EnergyGrid) -> dict[str, dict]:
    """Each compared quantity for real and simulated spectra."""
    rh_ka = 20.17  # intensity-weighted Rh K-alpha1/2
    compton = float(compton_energy(np.array([rh_ka]), REAL_CONDITIONS.scatter_deg)[0])
    out: dict[str, dict] = {}
    # the Rayleigh peak sits on the Compton peak's flank: wider window, curved background
    for name, near, half, quadratic in (
        ("Ca K-alpha", 3.69, 0.12, False),
        ("Rh K-alpha Rayleigh", rh_ka, 0.40, True),
        ("Rh K-alpha Compton", compton, 0.45, False),
    ):
        pr = fit_peak(real, grid, near, half, quadratic)
        ps = fit_peak(sim, grid, near, half, quadratic)
        out[name] = {"real_kev": pr.centre_kev, "sim_kev": ps.centre_kev,
                     "channel_diff": ps.channel - pr.channel,
                     "real_fwhm_ev": pr.fwhm_ev, "sim_fwhm_ev": ps.fwhm_ev}
    for label, bands in (("bands", BANDS_KEV), ("continuum", CONTINUUM_BANDS_KEV)):
        fr, fs = band_fractions(real, grid, bands), band_fractions(sim, grid, bands)
        out[label] = {"bands_kev": bands, "real": fr.tolist(), "sim": fs.tolist(),
                      "rel_diff": ((fs - fr) / fr).tolist()}
    e = grid.centres()
    above = e > 0.5  # the real file's zero-energy pulser peak is not simulated
    out["total"] = {"real_counts": float(real[above].sum()), "sim_counts": float(sim[above].sum())}
    return out


def figure(real: np.ndarray, sim: np.ndarray, grid: EnergyGrid, metrics: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = grid.centres()
    fig = plt.figure(figsize=(15, 8.5))
    top = fig.add_gridspec(2, 2, height_ratios=(1.0, 0.9))
    axes = [fig.add_subplot(top[0, 0])]
    axes.append(fig.add_subplot(top[0, 1], sharey=axes[0]))
    overlay = fig.add_subplot(top[1, :])
    lines = (("P K", 2.01), ("Ar K", 2.96), ("Ca K", 3.69), ("Fe K", 6.40), ("Zn K", 8.64),
             ("Pb L", 10.55), ("Sr K", 14.16), ("Rh K Compton", 18.75), ("Rh K", 20.17))
    for ax, y, title in ((axes[0], real, "real M6 Jetstream (.spx)"),
                         (axes[1], sim, "simulated (training.sim)")):
        ax.semilogy(e, np.maximum(y, 0.5), lw=0.6, color="k")
        ax.set_xlim(0.5, 25)
        ax.set_ylim(0.5, max(real.max(), sim.max()) * 2)
        ax.set_xlabel("energy (keV)")
        ax.set_title(title)
        for label, energy in lines:
            ax.axvline(energy, color="tab:red", lw=0.4, alpha=0.5)
            ax.text(energy, ax.get_ylim()[1] * 0.5, label, rotation=90, fontsize=7, va="top")
    kernel = np.ones(5) / 5  # 50 eV running mean, for legibility of the overlay
    overlay.semilogy(e, np.maximum(np.convolve(real, kernel, "same"), 0.2), lw=0.7,
                     color="k", label="real")
    overlay.semilogy(e, np.maximum(np.convolve(sim, kernel, "same"), 0.2), lw=0.7,
                     color="tab:orange", label="simulated")
    overlay.set_xlim(0.5, 25)
    overlay.set_xlabel("energy (keV)")
    overlay.set_ylabel("counts per channel (50 eV mean)")
    overlay.legend(loc="upper right")
    axes[0].set_ylabel("counts per channel")
    ca = metrics["Ca K-alpha"]
    fig.suptitle(
        f"Rh 50 kV 199 uA He, live {REAL_LIVE_S} s. Ca Ka FWHM real {ca['real_fwhm_ev']:.0f} eV, "
        f"sim {ca['sim_fwhm_ev']:.0f} eV; band fractions 3-6/6-12/12-20 keV real "
        + "/".join(f"{v:.3f}" for v in metrics["bands"]["real"]) + ", sim "
        + "/".join(f"{v:.3f}" for v in metrics["bands"]["sim"]),
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/data/realism.png"),
                        help="PNG to write (simulated vs real spectrum)")
    parser.add_argument("--real", type=Path, default=None,
                        help="real Bruker .spx to compare with (default: the shared M6 example)")
    args = parser.parse_args(argv)
    real, grid, _, _ = load_real(args.real)
    if grid != REAL_CONDITIONS.grid:
        print(f"note: real grid {grid} differs from the preset {REAL_CONDITIONS.grid}")
    sim = simulate(seed=0)
    metrics = compare(real, sim, grid)
    for key, value in metrics.items():
        print(f"{key}: {value}")
    print(f"wrote {figure(real, sim, grid, metrics, args.out)}")


if __name__ == "__main__":
    main()
