"""PyMca fit configurations generated from instrument descriptions: any anode, a
monochromatic beam, widths in keV, and quick fits of real spectra (M6, IXRF, APS)."""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory

from proto.instrument import Layer, Monochromatic, load
from training.fitconfig import make_config
from training.labels import refine_config
from training.readers import read

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENTS = ROOT / "training" / "instruments"
DATA = ROOT.parent / "shared" / "data"
SPX = DATA / "bruker_m6_jetstream_example.spx"
IXRF = DATA / "ixrf_atlas" / "ts2_01_sub_export.GeoPIXE"
APS = DATA / "aps_2ide" / "2xfm_0011_2xfm3__0.h5"
QUICK = {"continuum_bin_kev": 3.0}  # coarse excitation continuum: a quicker PyMca model


def _desc(name):
    return load(INSTRUMENTS / f"{name}.toml")


@pytest.mark.parametrize(("anode", "k_lines"), [("Mo", True), ("Ag", True), ("Cr", True),
                                               ("Cu", True), ("W", False), ("Rh", True)])
def test_any_anode(anode, k_lines):
    m6 = _desc("m6_jetstream")
    desc = dataclasses.replace(m6, fit={}, excitation=dataclasses.replace(
        m6.excitation, anode=anode, voltage_kv=45.0, window=Layer("Be", 125.0),
        filters=(Layer("Al", 25.0),)))
    cfg = make_config(desc)
    fit = cfg["fit"]
    assert abs(sum(fit["energyweight"]) - 1) < 1e-9 and max(fit["energy"]) < 45.0
    assert cfg["tube"]["anode"] == anode and fit["stripalgorithm"] == 1
    lo, hi = cfg["maxrf"]["fit_kev"]
    assert 1.0 <= lo < hi < 45.0
    if k_lines and anode in ("Cr", "Cu"):  # anode K lines inside the window: scatter peaks
        assert fit["scatterflag"] == 1 and sum(fit["energyscatter"]) >= 1
    else:
        assert fit["scatterflag"] == 0


def test_widths_are_in_kev():
    ixrf = _desc("ixrf_atlas")
    coarse = dataclasses.replace(ixrf, calibration=dataclasses.replace(
        ixrf.calibration, gain_kev=0.029, channels=1024))
    for desc, snip, smooth in ((ixrf, 40, 25), (coarse, 14, 9)):
        fit = make_config(desc)["fit"]
        assert (fit["snipwidth"], fit["stripfilterwidth"]) == (snip, smooth)
    assert make_config(ixrf, snip_width_kev=0.2)["fit"]["snipwidth"] == 20


def test_smoothing_stays_within_what_pymca_can_take(tmp_path):
    """PyMca's Savitzky-Golay keeps 101 coefficients on the stack; a wider window crashes the
    process. Our default on a fine grid (2 eV channels: 125) takes PyMca's widest; a width the
    description asks for, or a .cfg file's, is refused in words before PyMca runs."""
    import subprocess
    import sys

    from training.labels import load_config

    ixrf = _desc("ixrf_atlas")
    fine = dataclasses.replace(ixrf, calibration=dataclasses.replace(
        ixrf.calibration, gain_kev=0.002, channels=8192))
    cfg = make_config(fine, **QUICK)
    assert cfg["fit"]["stripfilterwidth"] == 101
    with pytest.raises(ValueError, match=r"smoothing_kev 0.3 is 151 channels of 2 eV; PyMca "
                       r"smooths over at most 101 \(set smoothing_kev <= 0.202"):
        make_config(dataclasses.replace(fine, fit={"smoothing_kev": 0.3}), **QUICK)
    cfg["fit"]["stripfilterwidth"] = 150  # PyMca makes an even window odd: 151
    wide = tmp_path / "wide.cfg"
    cfg.write(str(wide))
    with pytest.raises(ValueError, match=r"fit\.stripfilterwidth 151: PyMca's smoothing"):
        load_config(wide)
    # the fast fit's own entry refuses it too (in a child: were it to reach PyMca, it dies)
    code = ("from PyMca5.PyMcaIO import ConfigDict; from export.fastfit import build_model\n"
            f"c = ConfigDict.ConfigDict(); c.read({str(wide)!r})\n"
            "try:\n    build_model(c, 8192)\nexcept ValueError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "at most 101 channels" in done.stdout, done.stderr


def test_a_lab_chooses_the_mapped_elements(tmp_path):
    """[fit] maps: the bundle's outputs. An element outside the study's eight is fitted (K and
    L where the description gives no peaks) and mapped on its main family, the first of K, L, M
    the configuration fits: Ba and Sn on the M6 by their L lines, its window ending below their
    K lines. The list travels in the PyMca .cfg; an element the excitation or window cannot
    show is refused in words (Pb on the APS scan's 10 keV beam, below its L3 edge)."""
    from export.fastfit import build_model, map_lines
    from training.labels import load_config

    m6 = _desc("m6_jetstream")
    maps = ["Ca", "Fe", "Pb", "Co", "Zn", "Ba", "Sn"]
    cfg = make_config(dataclasses.replace(m6, fit={**m6.fit, "maps": maps}), **QUICK)
    assert cfg["peaks"]["Ba"] == "L" and cfg["peaks"]["Sn"] == "L" and cfg["peaks"]["Co"] == "K"
    model = build_model(cfg)
    assert model.outputs == tuple(maps)
    assert map_lines(model) == ("Ca K", "Fe K", "Pb L", "Co K", "Zn K", "Ba L", "Sn L")
    cfg["maxrf"]["maps"] = ["Co"]  # a one-item list reads back as a string
    cfg.write(str(tmp_path / "co.cfg"))
    assert build_model(load_config(tmp_path / "co.cfg")).outputs == ("Co",)
    aps = _desc("aps_2ide")
    with pytest.raises(ValueError, match=r"cannot map Pb: no L line of it is both excited and "
                       r"inside the fit window"):
        make_config(dataclasses.replace(aps, fit={**aps.fit, "maps": ["Ca", "Pb"]}), **QUICK)
    with pytest.raises(ValueError, match=r"cannot map Li: no K or L line"):
        make_config(dataclasses.replace(m6, fit={**m6.fit, "maps": ["Li"]}), **QUICK)
    many = ["Ca", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se",
            "Br", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Ag", "Cd", "In", "Sn", "Sb", "Te", "Ba",
            "W", "Au", "Hg", "Pb", "Bi"]  # 33: their sigma columns would make 66 maps
    with pytest.raises(ValueError, match=r"33 maps; a preview carries at most 32 elements"):
        make_config(dataclasses.replace(m6, fit={**m6.fit, "maps": many}), **QUICK)


def test_monochromatic_beam():
    aps = _desc("aps_2ide")
    cfg = make_config(aps)
    fit = cfg["fit"]
    assert fit["energy"] == [10.0] and fit["energyscatter"] == [1] and fit["scatterflag"] == 1
    assert "tube" not in cfg
    # 10 keV cannot excite Pb L3 (13.0 keV) or As K (11.9 keV): PyMca must not fit them
    assert "As" not in cfg["peaks"] and cfg["peaks"]["Pb"] == "M"
    assert cfg["peaks"]["La"] == "L" and "Ca" in cfg["peaks"]
    higher = dataclasses.replace(aps, excitation=Monochromatic(18.0), fit={})
    peaks = make_config(higher)["peaks"]
    assert "As" in peaks and "L3" in peaks["Pb"]


def _quiet():
    logging.getLogger("PyMca5").setLevel(logging.ERROR)


@pytest.mark.skipif(not SPX.exists(), reason="real M6 spectrum not found")
def test_m6_real_spectrum_fit():
    _quiet()
    y = read(SPX).counts[0, 0].astype(float)
    _, info = refine_config(make_config(_desc("m6_jetstream"), **QUICK), y)
    print(f"\nM6 real spectrum: {info}")
    assert info["reduced_chisq"] < 4.0  # measured 2.6 (0.6 keV continuum bins)


@pytest.mark.skipif(not IXRF.exists(), reason="IXRF data not found")
def test_ixrf_pixels_fit_mo_anode():
    """Ten real IXRF pixels with the Mo-anode config, each detector on its own: both fit, and
    the two detectors (a repeat measurement) agree on the Ca and Fe count rates."""
    _quiet()
    scan = read(IXRF)
    cfg = make_config(_desc("ixrf_atlas"), **QUICK)
    theory = ClassMcaTheory.McaTheory()
    theory.configure(cfg)  # the costly part: once for both detectors
    rates = []
    for det in range(2):
        y = scan.counts[det, 4, 5:15].sum(axis=0).astype(float)
        theory.setData(x=np.arange(y.size, dtype=float), y=y, xmin=cfg["fit"]["xmin"],
                       xmax=cfg["fit"]["xmax"])
        theory.estimate()
        _, result = theory.startfit(digest=1)
        print(f"\nIXRF detector {det}, 10 pixels: reduced chi2 {result['chisq']:.2f}, Ca "
              f"{result['Ca K']['fitarea']:.0f}, Fe {result['Fe K']['fitarea']:.0f} counts")
        assert result["chisq"] < 4.0
        live = float(scan.live_time_s[det, 4, 5:15].sum())
        rates.append({el: result[f"{el} K"]["fitarea"] / live for el in ("Ca", "Fe")})
    for el in ("Ca", "Fe"):
        a, b = rates[0][el], rates[1][el]
        assert a > 0 and b > 0 and abs(a - b) / (a + b) < 0.25, (el, a, b)


@pytest.mark.skipif(not APS.exists(), reason="APS data not found")
def test_aps_monochromatic_fit():
    _quiet()
    scan = read(APS)
    y = scan.counts[0].reshape(-1, scan.counts.shape[-1]).sum(axis=0).astype(float)
    _, info = refine_config(make_config(_desc("aps_2ide")), y)
    print(f"\nAPS detector a: {info}")
    assert info["reduced_chisq"] < 6.0  # measured 3.6
    assert info["Gain"] == pytest.approx(0.0096, abs=0.0002)
    assert np.isfinite(info["Zero"])
