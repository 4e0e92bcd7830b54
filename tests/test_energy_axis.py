"""The stream's energy axis, checked against its own spectra (proto.energy_axis): found where
it was moved to, kept where it is right, not trusted on too few counts or past the search
range; and in the daemon: the first pixels wait for the check (recorded), then all are drawn
on the decided axis, and the status says which.

The fit is PyMca's fast fit of the IXRF description cut to 3-9.5 keV (Ca, Mn, Fe, Cu), at
its nominal calibration; the spectra are drawn from its own unit responses, so their true
axis is the bundle's grid by construction."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pytest

from proto import wire
from proto.energy import EnergyGrid
from proto.energy_axis import MIN_COUNTS, AxisCheck, decide_in_order, shifted

ROOT = Path(__file__).resolve().parents[1]
TOML = ROOT / "training" / "instruments" / "ixrf_atlas.toml"
GRID = EnergyGrid(0.0, 0.01, 1024)  # 0-10 keV


@cache
def _model():
    import tempfile

    from export.calib_data import PymcaRef
    from proto.instrument import load

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ixrf_small.toml"
        path.write_text(TOML.read_text() + "\n[fit]\nrange_kev = [3.0, 9.5]\n")
        desc = load(path)
    fitted = PymcaRef(desc, quick=True, refine=False).fitted(np.ones((1, GRID.channels)), GRID,
                                                             np.ones(1))
    return fitted.model


@cache
def _check() -> AxisCheck:
    from export.fastfit_graph import with_axis_check

    fields, files = with_axis_check({}, _model(), GRID)
    e = fields["domain"]["energy_axis"]
    from export.calib_bundle import session

    return AxisCheck(session(files[e["file"]]).run, GRID, tuple(e["anchors_kev"]), e["first"])


def _spectra(pixels: int, counts_each: float, seed: int = 0) -> np.ndarray:
    """Poisson pixels of a paint with Ca, Mn (a trace beside Fe), Fe, Cu over a flat
    continuum, on GRID (their true axis)."""
    m = _model()
    peaks = m.derivatives[:, m.peaks]
    names = [n for n, p in zip(m.names, m.peaks, strict=True) if p]
    share = {"Ca K": 0.3, "Mn K": 0.01, "Fe K": 0.35, "Cu K": 0.25}
    areas = np.array([share.get(n, 0.0) for n in names])
    mean = np.zeros(GRID.channels)
    mean[m.first:m.first + m.window] = peaks @ areas
    mean = 0.9 * mean / mean.sum() + 0.1 / GRID.channels  # 10 % continuum
    rng = np.random.default_rng(seed)
    return rng.poisson(mean * counts_each, (pixels, GRID.channels)).astype(np.float32)


def test_finds_a_moved_axis_and_keeps_a_right_one():
    """A stream whose lines sit 8 eV above its stated axis at the low anchor and 15 eV at the
    high one (IXRF detector 1's case) is found within 1.5 eV and read on the refined axis;
    the true axis is kept."""
    check = _check()
    total = _spectra(40, 5000).sum(axis=0)  # 200k counts
    kept = check.check(total, GRID)
    assert kept.state == "kept" and kept.served == GRID
    assert max(abs(d) for d in kept.shift_ev) < 1.5
    moved = shifted(GRID, check.anchors_kev, -0.008, -0.015)  # what the scanner states
    found = check.check(total, moved)
    assert found.state == "locked" and found.residual_drop > 0.5
    assert np.allclose(found.shift_ev, (8.0, 15.0), atol=1.5), found.shift_ev
    window = slice(round(GRID.channel(3.0)), round(GRID.channel(9.5)))
    assert np.abs(found.served.centres() - GRID.centres())[window].max() < 0.0015  # keV
    assert "locked" in found.line() and "+8" in found.line()


def test_untrusted_axes_are_not_served():
    """Past the search range the stated axis is served and the verdict says to check the
    scanner; below MIN_COUNTS the search is not run."""
    check = _check()
    total = _spectra(40, 5000).sum(axis=0)
    far = check.check(total, shifted(GRID, check.anchors_kev, -0.09, -0.09))  # 90 eV off
    assert far.state == "off_range" and far.served == far.stated
    few = _spectra(4, 2000)  # 8k counts
    verdict = decide_in_order(check, few, GRID)
    assert verdict.state == "too_few_counts" and verdict.served == GRID
    assert verdict.counts < MIN_COUNTS and "fewer than" in verdict.line()


def test_a_failing_check_serves_the_stated_axis(monkeypatch):
    """A search that raises never holds a scan's previews: the stated axis, and why."""
    from proto.energy_axis import AxisLock

    check = _check()
    monkeypatch.setattr(check, "residuals", lambda *a: np.linalg.solve(np.zeros((2, 2)),
                                                                       np.ones(2)))
    lock = AxisLock(check, GRID)
    lock.add(_spectra(20, 5000))
    verdict = lock.decide()
    assert verdict.state == "check_failed" and verdict.served == GRID
    assert "LinAlgError" in lock.status()["error"] and "failed" in verdict.line()


def test_decided_on_the_first_pixels_in_scan_order():
    """Offline evaluation decides as the daemon does: on the first pixels up to MIN_COUNTS
    (a moved stream's later pixels do not change it)."""
    check = _check()
    counts = _spectra(60, 5000)
    moved = shifted(GRID, check.anchors_kev, -0.008, -0.015)
    verdict = decide_in_order(check, counts, moved)
    assert MIN_COUNTS <= verdict.counts < MIN_COUNTS + 2 * 5000 * 1.2
    assert verdict.state == "locked"


@pytest.fixture
def axis_models(tmp_path) -> Path:
    """A models folder with the fast fit's element bundle (and its axis check) alone."""
    from export.calib_bundle import fastfit_bundle

    counts = _spectra(8, 5000, seed=9)
    fastfit_bundle(_model(), GRID, tmp_path / "models" / "elements", check_counts=counts,
                   check_live=np.full(len(counts), 0.1), fields={})
    return tmp_path / "models"


def _start(scan_id: str, grid: EnergyGrid) -> wire.ScanStart:
    return wire.ScanStart(scan_id=scan_id, width=10, height=4, channels=grid.channels,
                          offset_kev=grid.offset, gain_kev=grid.gain, dwell_s=0.1,
                          beam_spot_um=50.0, pixel_size_um=100.0, counts_dtype="<u4")


def _row(scan_id: str, seq: int, y: int, counts: np.ndarray) -> wire.Spectra:
    n = len(counts)
    return wire.Spectra(scan_id=scan_id, seq=seq, x=np.arange(n, dtype=np.uint32),
                        y=np.full(n, y, np.uint32), live_time_s=np.full(n, 0.1, np.float32),
                        real_time_s=np.full(n, 0.105, np.float32),
                        counts=counts.astype(np.uint32))


def test_daemon_holds_the_first_pixels_then_draws_all_on_the_decided_axis(axis_models,
                                                                          tmp_path):
    from edge.inference import Engine
    from tests.edge_inproc import InProcess

    check = _check()
    # the stream runs past the bundle's grid (it must cover it on its stated axis)
    wide = EnergyGrid(GRID.offset - 10 * GRID.gain, GRID.gain, GRID.channels + 74)
    moved = shifted(wide, check.anchors_kev, -0.008, -0.015)
    counts = np.pad(_spectra(40, 2000, seed=3), ((0, 0), (10, 64)))  # 20k counts a row of 10
    edge = InProcess(tmp_path, axis_models)
    try:
        edge.send(_start("moved", moved), _row("moved", 1, 0, counts[:10]))
        scan = edge.status().detail["scan"]
        assert scan["energy_axis"]["state"] == "summing" and scan["filled"] == 0
        assert sum(len(h[0]) for h in edge.daemon.scan.held) == 10  # waiting, not lost
        edge.send(_row("moved", 2, 1, counts[10:20]), _row("moved", 3, 2, counts[20:30]))
        scan = edge.status().detail["scan"]
        axis = scan["energy_axis"]
        assert axis["state"] == "locked" and scan["filled"] == 30
        assert np.allclose(axis["shift_ev"], (8.0, 15.0), atol=2.0), axis
        canvas = edge.daemon.scan.canvas
        drawn = canvas.elements[:, :3].transpose(1, 2, 0).reshape(30, -1).copy()
        edge.send(_row("moved", 4, 3, counts[30:40]))  # later pixels: at once, same axis
        assert edge.status().detail["scan"]["filled"] == 40
        # the held pixels were read on the refined axis: Mn (a trace beside Fe) as on the
        # true one, not as the stated axis reads it
        session = edge.daemon.sessions["elements"]
        mn = list(session.manifest.outputs).index("Mn")
        live = np.full(30, 0.1)
        true, stated = (Engine({"elements": session}, g, 64).run(counts[:30], live)["elements"]
                        for g in (wide, moved))
        assert np.abs(drawn[:, mn] - true[:, mn]).mean() \
            < np.abs(stated[:, mn] - true[:, mn]).mean() / 5
        # a scan that ends before MIN_COUNTS: its held pixels are drawn at scan end
        edge.send(_start("short", wide), _row("short", 1, 0, counts[:3] // 10))
        assert edge.status().detail["scan"]["filled"] == 0
        edge.send(wire.ScanEnd(scan_id="short", status="success", pixel_count=3))
        assert edge.daemon.finished.canvas.filled == 3
        assert edge.daemon.finished.axis.verdict.state == "too_few_counts"
        # each recording keeps the axis its maps were read on
        ends = {}
        for f in edge.recordings.glob("*.h5"):
            with h5py.File(f, "r") as h5:
                end = json.loads(h5.attrs["end"])
                ends[end["energy_axis"]["state"]] = end["energy_axis"]
                # and the background its element fit served (proto.continuum): 80k counts
                assert end["background"]["elements"]["background"] == "per-pixel SNIP"
        assert set(ends) == {"locked", "too_few_counts"}
        assert ends["locked"]["served"] == axis["served"]
    finally:
        edge.close()


def test_archive_reads_a_recording_on_the_axis_the_daemon_serves(axis_models, tmp_path,
                                                                 capsys):
    """`python -m archive reprocess` decides a recording's axis as the daemon does (its
    first pixels, rows in order), so its maps are the live ones; scripts/axis_check.py
    prints that verdict."""
    from archive.reprocess import stream_axis
    from edge.inference import load_models
    from proto.dataset import open_dataset, write_dataset

    check = _check()
    wide = EnergyGrid(GRID.offset - 10 * GRID.gain, GRID.gain, GRID.channels + 74)
    moved = shifted(wide, check.anchors_kev, -0.008, -0.015)
    counts = np.pad(_spectra(40, 2000, seed=3), ((0, 0), (10, 64))).reshape(4, 10, -1)
    live = np.full((4, 10), 0.1, np.float32)
    path = write_dataset(tmp_path / "moved.h5", counts.astype(np.uint32), moved, live,
                         live * np.float32(1.05), scan={"dwell_s": 0.1}, instrument={})
    sessions = load_models(axis_models, threads=1)
    with open_dataset(path) as ds:
        axis = stream_axis(sessions, ds)
    first = counts.reshape(40, -1)[:30]  # the daemon's decision: rows 0-2 reach MIN_COUNTS
    verdict = decide_in_order(sessions["elements"].axis, first, moved)
    want = verdict.served
    assert axis == (want.offset, want.gain) and want != moved
    # scripts/axis_check.py says the same of the file, without a daemon
    from scripts.axis_check import main

    assert main([str(path), "--models", str(axis_models)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("moved.h5: ") and verdict.line() in said and "(locked" in said
