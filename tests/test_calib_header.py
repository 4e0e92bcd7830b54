"""export.calib_header: `make calibrate` refuses a scan whose own header states another
excitation than the description it is given, in one line, before any work; the real files'
headers agree with their own descriptions and with nothing else's."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.calib_header import header_conflict, spot_um
from proto.instrument import load

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
INSTRUMENTS = ROOT / "training" / "instruments"
FILES = {  # real file -> its instrument's description, and those its header contradicts
    DATA / "ixrf_atlas" / "ts2_01_sub_export.GeoPIXE":
        ("ixrf_atlas", {"aps_2ide", "m6_jetstream", "m1_mistral"}),  # a Mo tube at 50 kV
    DATA / "aps_2ide" / "2xfm_0011_2xfm3__0.h5":
        ("aps_2ide", {"ixrf_atlas", "m6_jetstream", "m1_mistral"}),  # a 10 keV beam
    # a Bruker file states only its 50 kV: any 50 kV tube agrees with it
    DATA / "bruker_m6_jetstream_example.spx": ("m6_jetstream", {"aps_2ide"}),
}
DESCRIPTIONS = ("ixrf_atlas", "aps_2ide", "m6_jetstream", "m1_mistral")


def _header(path: Path) -> dict:
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    from training.readers import read

    return read(path).instrument


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_headers_agree_with_their_own_description_only(path):
    header, (own, contradicted) = _header(path), FILES[path]
    said = {name: header_conflict(header, load(INSTRUMENTS / f"{name}.toml"))
            for name in DESCRIPTIONS}
    assert said[own] is None
    assert {name for name, s in said.items() if s} == contradicted, said


def test_conflicts_are_said_in_words():
    ixrf, aps = (load(INSTRUMENTS / f"{n}.toml") for n in ("ixrf_atlas", "aps_2ide"))
    said = header_conflict({"anode": "Rh", "voltage_kv": 40}, ixrf)
    assert said.startswith("its header states a Rh anode and 40 kV, but the description "
                           "'IXRF ATLAS' has a Mo tube at 50 kV")
    assert header_conflict({"voltage_kv": "49.5"}, ixrf) is None  # headers round
    assert "a 12 keV beam" in header_conflict({"beam_energy_kev": 12.0}, aps)
    assert "an X-ray tube (Mo anode)" in header_conflict({"anode": "Mo"}, aps)
    assert "10 keV monochromatic beam" in header_conflict({"beam_energy_kev": 10.0}, ixrf)
    assert header_conflict({"voltage_kv": None, "anode": "", "spot_um": 5}, ixrf) is None


def test_the_files_own_spot_sizes_the_margin():
    ixrf = load(INSTRUMENTS / "ixrf_atlas.toml")
    assert spot_um({"spot_um": 25}, ixrf) == 25.0
    assert spot_um({}, ixrf) == ixrf.excitation.spot_um
    assert spot_um({"spot_um": "n/a"}, ixrf) == ixrf.excitation.spot_um


def test_calibrate_refuses_another_instruments_scan_in_one_line(capsys, tmp_path):
    path = next(iter(FILES))
    _header(path)
    from export.calibrate import main

    code = main([str(INSTRUMENTS / "m6_jetstream.toml"), str(path), "--detector", "0",
                 "--out", str(tmp_path / "models"), "--work", str(tmp_path / "work")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert any(line.startswith("calibrate: ") and "states a Mo anode" in line
               and "'M6 Jetstream' has a Rh tube at 50 kV" in line for line in err)
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_dataset_that_names_its_instrument_is_checked_by_fingerprint():
    """A dataset converted with --instrument keeps its description: the fingerprints decide,
    and the refusal names both instruments and what differs."""
    m6, m1 = (load(INSTRUMENTS / f"{n}.toml") for n in ("m6_jetstream", "m1_mistral"))
    record = {"anode": "W", "voltage_kv": 50.0, "description": m1.to_dict()}
    assert header_conflict(record, m1) is None
    said = header_conflict(record, m6)
    assert said.startswith("it was recorded by 'M1 Mistral' (fingerprint ca9515d47713), not "
                           "by the description's 'M6 Jetstream' (fingerprint b2639cdbf6a9)")
    assert "excitation.anode W vs Rh" in said
    # a stated fingerprint without tables is still another instrument's
    assert "recorded by 'lab XRF'" in header_conflict({"name": "lab XRF",
                                                       "fingerprint": "a" * 64}, m6)
