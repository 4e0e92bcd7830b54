"""The instrument travels with the data (issue 12 item 2): a dataset's description becomes
scan_start.instrument (name, fingerprint, description) and nothing is invented; the wire
refuses an identity that does not hold together; differences read as an operator would."""

from pathlib import Path

import numpy as np
import pytest

from edge.replay import scan_start_for
from proto import wire
from proto.dataset import open_dataset, write_dataset
from proto.energy import EnergyGrid
from proto.identity import differences, identity_map, parse_identity, stream_instrument
from proto.instrument import load

INSTRUMENTS = Path(__file__).resolve().parents[1] / "training" / "instruments"
M6, M1 = (load(INSTRUMENTS / f"{n}.toml") for n in ("m6_jetstream", "m1_mistral"))


def _dataset(path: Path, instrument: dict, scan: dict) -> Path:
    grid = EnergyGrid(0.0, 0.02, 64)
    counts = np.ones((2, 3, 64), np.uint16)
    live = np.full((2, 3), 0.009, np.float32)
    return write_dataset(path, counts, grid, live, live * np.float32(1.1),
                         instrument=instrument, scan=scan)


def test_replay_sends_the_files_identity_and_invents_no_optics(tmp_path):
    record = {"reader": "bruker", "description": M1.to_dict(), "fingerprint": "0" * 64}
    path = _dataset(tmp_path / "m1.h5", record, {"note": "no dwell, spot or pixel size"})
    with open_dataset(path) as ds:
        start = scan_start_for(ds, "s1", "raster")
    assert start.beam_spot_um is None and start.pixel_size_um is None
    assert start.dwell_s == pytest.approx(0.0099, rel=1e-3)  # the measured real time
    ident = parse_identity(start.instrument)
    assert ident.name == "M1 Mistral" and ident.fingerprint == M1.fingerprint()  # recomputed
    decoded = wire.decode(wire.encode(start))
    assert "beam_spot_um" not in wire.to_wire(start) and decoded.beam_spot_um is None
    assert decoded.instrument["excitation"]["anode"] == "W"


def test_a_file_without_description_is_an_unknown_instrument(tmp_path):
    path = _dataset(tmp_path / "eds.h5", {"name": "EDS", "fingerprint": "stale"},
                    {"dwell_s": 0.5, "beam_spot_um": 2.0, "pixel_size_um": 3.0})
    with open_dataset(path) as ds:
        start = scan_start_for(ds, "s1", "raster")
    assert start.instrument == {"name": "EDS"} and parse_identity(start.instrument) is None
    assert (start.dwell_s, start.beam_spot_um, start.pixel_size_um) == (0.5, 2.0, 3.0)
    assert stream_instrument(None) == {}


def test_a_recording_replays_with_the_identity_it_was_streamed_with():
    """The daemon records scan_start.instrument as it came: an identity map, replayed as one."""
    again = parse_identity(stream_instrument(identity_map(M6)))
    assert again.fingerprint == M6.fingerprint() and again.description == M6
    bare = {"name": "lab scanner", "fingerprint": M6.fingerprint()}
    assert stream_instrument(bare) == bare


def test_wire_refuses_an_identity_that_does_not_hold_together():
    start = wire.ScanStart("s1", 2, 2, 16, 0.0, 0.02, 0.1, instrument=identity_map(M6))
    assert wire.decode(wire.encode(start)).instrument["fingerprint"] == M6.fingerprint()
    m = wire.to_wire(start)
    m["instrument"]["geometry"]["takeoff_deg"] = 45.0  # the description no longer hashes
    with pytest.raises(wire.ProtocolError) as err:
        wire.decode(_pack(m))
    assert (err.value.reason, err.value.path) == ("bad_value", "instrument.fingerprint")


def _pack(m: dict) -> bytes:
    import msgpack

    return msgpack.packb(m, use_bin_type=True)


def test_differences_name_what_shapes_the_spectra():
    diff = differences(M1, M6)
    assert diff[0] == "excitation.anode W vs Rh"
    assert any(d.startswith("excitation.filters [SiO2 2000 um] vs none") for d in diff)
    assert differences(M6, M6) == []
