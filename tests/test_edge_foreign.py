"""Honest refusal and honest serving (issue 12 items 4, 5): a stream from an instrument the
models were not trained for is refused with a sentence an operator understands (replay exits
1 with it, status and the log say it); with --allow-foreign it is served and every preview of
those models and the status say `foreign`; the coverage check asks only for the energies
where the models have signal; every live pixel gets an out-of-domain mark per model.

Tiny bundles stated to be trained for the M6 Jetstream, with an in-domain subspace fitted on
synthetic spectra of three lines; streams are dataset files with the description stored the
way `training.convert --instrument` and the simulated scenes store it; the EDS map is the
real .bcf in ../shared/data, converted and zero-padded to 4096 channels."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from export.tiny import TINY_GRID, write_tiny_bundles
from proto import wire
from proto.dataset import open_dataset, write_dataset
from proto.domain import fit_subspace
from proto.energy import EnergyGrid, Rebinner
from proto.identity import identity_map
from proto.instrument import load
from tests.edge_support import ROOT, Daemon

INSTRUMENTS = ROOT / "training" / "instruments"
M6, M1, APS = (load(INSTRUMENTS / f"{n}.toml") for n in ("m6_jetstream", "m1_mistral",
                                                          "aps_2ide"))
DATA = ROOT.parent / "shared" / "data"
STREAM = EnergyGrid(-0.96, 0.01, 4096)  # an M6's: -0.965 .. 40 keV
TRAINED_LINES = (3.69, 6.40, 10.55)  # Ca, Fe, Pb L: the tiny models' "training paint"


def spectra(rng, n: int, grid: EnergyGrid, lines=TRAINED_LINES, live_s: float = 0.05
            ) -> tuple[np.ndarray, np.ndarray]:
    """(n, C) counts of a continuum plus Gaussian lines of random strength, and live times."""
    e = grid.centres()
    rate = 40.0 * np.exp(-((e - 9.0) / 6.0) ** 2)[None] * rng.uniform(0.5, 2.0, (n, 1))
    for mu in lines:
        rate = rate + rng.gamma(2.0, 150.0, (n, 1)) * np.exp(-0.5 * ((e - mu) / 0.07) ** 2)
    rate[:, e < 1.0] = 0.0  # air: nothing below 1 keV
    live = np.full(n, live_s)
    return rng.poisson(rate * live[:, None]).astype(np.uint16), live


def scan_file(path: Path, description, grid: EnergyGrid = STREAM, lines=TRAINED_LINES,
              shape=(6, 8), seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    counts, live = spectra(rng, shape[0] * shape[1], grid, lines)
    record = {} if description is None else {"description": description.to_dict(),
                                             "fingerprint": description.fingerprint()}
    return write_dataset(path, counts.reshape(*shape, -1), grid, live.reshape(shape),
                         live.reshape(shape) * 1.05, instrument=record,
                         scan={"dwell_s": 0.0525})


def padded(src: Path, dst: Path, channels: int = 4096, description=None) -> Path:
    """A dataset zero-padded to `channels` (the trick that made foreign files look servable)."""
    with open_dataset(src) as ds:
        counts, grid = np.asarray(ds.counts), ds.grid
        live, real = np.asarray(ds.live_time_s), np.asarray(ds.real_time_s)
        record = dict(ds.instrument or {})
    if description is not None:
        record.update(description=description.to_dict(), fingerprint=description.fingerprint())
    out = np.zeros((*counts.shape[:2], channels), counts.dtype)
    out[..., :counts.shape[2]] = counts
    return write_dataset(dst, out, EnergyGrid(grid.offset, grid.gain, channels), live, real,
                         instrument=record, scan={"dwell_s": float(real.mean())})


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, Path]:
    """The real EDS map and synchrotron scan, converted once for the module."""
    tmp = tmp_path_factory.mktemp("real")
    return {"eds": eds_map(tmp), "aps": synchrotron(tmp)}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("foreign") / "models"
    rng = np.random.default_rng(0)
    counts, live = spectra(rng, 3000, STREAM)
    rates = Rebinner(STREAM, TINY_GRID)(counts) / live[:, None].astype(np.float32)
    subspace = fit_subspace(rates[:2400], live[:2400], rates[2400:], live[2400:], 6)
    write_tiny_bundles(folder, instruments=[identity_map(M6)],
                       domain={"energy_kev": [1.0, 20.0]}, subspace=subspace)
    return folder


def edge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def replay(d: Daemon, path: Path, scan_id: str) -> subprocess.CompletedProcess:
    return edge("replay", str(path), "--ingest", d.ingest, "--snapshot", d.snapshot,
                "--scan-id", scan_id, "--pixels-per-message", "16")


def eds_map(tmp: Path) -> Path:
    bcf = DATA / "bruker_eds_30x30_example.bcf"
    if not bcf.is_file():
        pytest.skip("no ../shared/data/bruker_eds_30x30_example.bcf")
    from training.convert import convert

    return padded(convert(bcf, tmp / "eds_2048.h5"), tmp / "eds.h5")


def synchrotron(tmp: Path) -> Path:
    maps = DATA / "aps_2ide" / "2xfm_0011_2xfm3__0.h5"
    if not maps.is_file():
        pytest.skip("no ../shared/data/aps_2ide")
    from training.convert import convert

    src = convert(maps, tmp / "aps_2048.h5", instrument=INSTRUMENTS / "aps_2ide.toml")
    return padded(src, tmp / "aps.h5")


def test_foreign_streams_are_refused_with_a_readable_reason(models, real, tmp_path):
    """M1 into M6 models, an EDS map (no instrument) and a zero-padded synchrotron scan are
    refused: replay exits 1 with the reason, the status names the refused scan and why, the
    daemon log says it; an M6 detector starting 15 eV above zero is served (its coverage is
    checked from 1 keV, where the models have signal, not from the grid's edge at 0)."""
    log = tmp_path / "daemon.log"
    d = Daemon(models, tmp_path / "rec", log=log).start()
    try:
        r = replay(d, scan_file(tmp_path / "m1.h5", M1), "m1-scan")
        assert r.returncode == 1, r.stdout + r.stderr
        err = r.stderr.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert ("this stream is from 'M1 Mistral' (fingerprint ca9515d47713); the rgb, "
                "elements and trust models were trained for 'M6 Jetstream' (fingerprint "
                "b2639cdbf6a9), which differs in excitation.anode W vs Rh") in err, err
        assert "start the daemon with --allow-foreign" in err, err
        s = d.status()
        assert s.scan_id == "m1-scan" and "'M1 Mistral'" in s.refused and s.state == "idle"

        r = replay(d, real["eds"], "eds")
        assert r.returncode == 1 and "does not say which instrument it comes from" in r.stderr
        assert "convert files with --instrument" in r.stderr, r.stderr

        r = replay(d, real["aps"], "aps")
        assert r.returncode == 1, r.stdout
        assert "this stream is from 'APS 2-ID-E'" in r.stderr, r.stderr
        assert "excitation.kind monochromatic vs tube" in r.stderr, r.stderr

        late = EnergyGrid(0.020, 0.01, 2048)  # channel 0 starts at 0.015 keV
        r = replay(d, scan_file(tmp_path / "m6_late.h5", M6, grid=late), "m6-late")
        assert r.returncode == 0 and "confirmed: 48 pixels accepted" in r.stdout, r.stderr
        s = d.status()
        assert s.scan_id == "m6-late" and not s.refused and s.foreign == ()
        assert set(s.out_of_domain) == {"rgb", "elements", "trust"}
    finally:
        d.stop()
    text = log.read_text()
    assert "scan m1-scan refused: this stream is from 'M1 Mistral'" in text
    assert "scan m6-late accepted" in text


def test_allow_foreign_serves_flagged_and_marks_the_unfamiliar(models, real, tmp_path):
    """--allow-foreign: the M1 stream and the EDS map are served; every preview and the
    status say foreign; the out-of-domain mask and fraction come with them: an in-family
    stream is inside, the EDS map (nothing like the training spectra) is outside."""
    d = Daemon(models, tmp_path / "rec", "--allow-foreign").start()
    try:
        r = replay(d, scan_file(tmp_path / "m1.h5", M1, seed=2), "m1-scan")
        assert r.returncode == 0 and "confirmed: 48 pixels accepted" in r.stdout, r.stderr
        s = d.status()
        assert s.foreign == ("elements", "rgb", "trust") and not s.refused
        assert s.out_of_domain["elements"] < 0.1  # the training family, another instrument
        assert "'M1 Mistral'" in s.detail["scan"]["foreign"]
        snap = _snapshot(d)
        assert {f.topic: f.foreign for f in snap.frames} == dict.fromkeys(
            ("rgb", "elements", "trust"), True)
        assert all(f.domain is not None and f.domain.shape == (6, 8) for f in snap.frames)

        r = replay(d, real["eds"], "eds")
        assert r.returncode == 0, r.stderr
        s = d.status()
        assert s.scan_id == "eds" and s.foreign == ("elements", "rgb", "trust")
        assert min(s.out_of_domain.values()) > 0.9, s.out_of_domain
        assert s.detail["scan"]["instrument"] == "unknown instrument"
        frame = next(f for f in _snapshot(d).frames if f.topic == "elements")
        assert frame.domain.mean() > 0.9 and frame.foreign
    finally:
        d.stop()


def _snapshot(d: Daemon) -> wire.SnapshotReply:
    from edge.watch import request

    deadline = time.monotonic() + 10
    while True:
        reply = request(d.snapshot, wire.SnapshotRequest(), 5.0)
        if reply.frames or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def test_watch_shows_foreign_domain_and_unfamiliar_as_masks(tmp_path):
    """edge watch: the trust map becomes a 0/1 mask at the bundle's threshold (a score of
    5.5 and one of 0.08 no longer look alike), the out-of-domain masks of each model and the
    foreign flag are drawn and printed."""
    from edge.marks import line
    from edge.png import read_png
    from edge.watch import Mirror, write_pngs

    m = Mirror()
    trust = np.array([[0.08, 5.5], [0.2, 0.1]], np.float32)
    m.apply(wire.Preview("trust", "s", 3, (0, 0, 2, 2), True, ("trust",), trust, foreign=True,
                         domain=np.array([[0, 1], [0, 0]], np.uint8), threshold=1.0))
    m.apply(wire.Preview("elements", "s", 3, (1, 1, 1, 1), False, ("Fe",),
                         np.ones((1, 1, 1), np.float32), domain=np.ones((1, 1), np.uint8)))
    assert m.marks.foreign == {"trust"} and m.marks.threshold == 1.0
    assert m.marks.domain["trust"].tolist() == [[0, 1], [0, 0]]
    assert m.marks.domain["elements"].tolist() == [[0, 0], [0, 1]]
    names = {p.name for p in write_pngs(m, tmp_path)}
    assert {"unfamiliar.png", "domain.png", "trust.png"} <= names
    img = read_png(tmp_path / "unfamiliar.png")
    assert len({tuple(px) for px in img.reshape(-1, 3)}) > 2  # the mask drawn, not blank
    status = wire.Status("s", 3, "scanning", foreign=("trust",),
                         out_of_domain={"trust": 0.25, "elements": 1.0})
    assert line(status) == ("  FOREIGN models: trust; outside training domain: elements 100%, "
                            "trust 25%")
