"""Instrument descriptions (proto/INSTRUMENT.md): the shipped TOMLs, the dict round trip,
the fingerprint's stability and sensitivity, errors that name the key, and the simulator
built from a description."""

import dataclasses
import json
from pathlib import Path

import pytest

from proto.instrument import (
    InstrumentDescription,
    InstrumentError,
    Layer,
    Monochromatic,
    load,
    loads,
)

INSTRUMENTS = Path(__file__).resolve().parents[1] / "training" / "instruments"
NAMES = ["m6_jetstream", "m1_mistral", "ixrf_atlas", "aps_2ide"]
# The canonical form is a contract (other languages recompute it): a change to the rounding,
# the units or the key names must be deliberate, and shows here.
M6_FINGERPRINT = "b2639cdbf6a97f4b"


@pytest.mark.parametrize("name", NAMES)
def test_shipped_descriptions_load_and_round_trip(name):
    desc = load(INSTRUMENTS / f"{name}.toml")
    wire = json.loads(json.dumps(desc.to_dict()))  # what a dataset or scan_start carries
    again = InstrumentDescription.from_dict(wire, strict=True)
    assert again == desc and again.fingerprint() == desc.fingerprint()
    assert len(desc.fingerprint()) == 64 and desc.calibration.grid.channels > 0


def test_shipped_values():
    m6, ixrf, aps = (load(INSTRUMENTS / f"{n}.toml") for n in ("m6_jetstream", "ixrf_atlas",
                                                              "aps_2ide"))
    assert m6.fingerprint().startswith(M6_FINGERPRINT)
    assert (m6.excitation.anode, m6.excitation.voltage_kv, m6.calibration.channels) == \
        ("Rh", 50.0, 4096)
    assert 130 <= m6.detector.fwhm_mn_ka_ev <= 150
    assert ixrf.excitation.anode == "Mo" and ixrf.excitation.window.thickness_um == 125
    assert (ixrf.detector.count, ixrf.detector.combine) == (2, "separate")
    assert isinstance(aps.excitation, Monochromatic) and aps.excitation.energy_kev == 10.0
    assert aps.calibration.gain_kev == pytest.approx(0.0095216077)
    assert aps.detector.fwhm_mn_ka_ev == pytest.approx(176.6, abs=0.5)  # MAPS' resolution


def _change(desc, part, **changes):
    return dataclasses.replace(desc, **{part: dataclasses.replace(getattr(desc, part),
                                                                  **changes)})


def test_fingerprint_ignores_what_models_do_not_see():
    m6 = load(INSTRUMENTS / "m6_jetstream.toml")
    same = [
        dataclasses.replace(m6, name="another lab's M6", simulation={}, fit={}),
        _change(m6, "excitation", current_ua=199.0, spot_um=100.0),
        _change(m6, "calibration", offset_kev=-0.958, gain_kev=0.010002),  # drift
        _change(m6, "detector", noise_ev=75.0),  # FWHM 141.3 -> 141.8 eV
        m6.for_stream(summed=True),
    ]
    assert {d.fingerprint() for d in same} == {m6.fingerprint()}
    # one element of a separate multi-element detector = a one-element instrument
    two = _change(m6, "detector", count=2, combine="separate")
    assert two.fingerprint() == m6.fingerprint()
    assert two.for_stream(summed=True).fingerprint() != m6.fingerprint()


def test_fingerprint_changes_with_what_shapes_the_spectra():
    m6 = load(INSTRUMENTS / "m6_jetstream.toml")
    changed = [
        _change(m6, "excitation", anode="Mo"),
        _change(m6, "excitation", voltage_kv=40.0),
        _change(m6, "excitation", window=Layer("Be", 250.0)),
        _change(m6, "excitation", filters=(Layer("Al", 100.0),)),
        _change(m6, "detector", noise_ev=110.0),
        _change(m6, "detector", window=Layer("Be", 25.0)),
        _change(m6, "geometry", atmosphere="He"),
        _change(m6, "geometry", takeoff_deg=45.0),
        _change(m6, "calibration", channels=2048),
        _change(m6, "calibration", gain_kev=0.02),
        dataclasses.replace(m6, excitation=Monochromatic(10.0)),
    ]
    prints = [d.fingerprint() for d in changed]
    assert len(set(prints)) == len(prints) and m6.fingerprint() not in prints


def test_fwhm_alternative_and_unknown_keys_on_the_wire():
    text = (INSTRUMENTS / "ixrf_atlas.toml").read_text()
    desc = loads(text)
    assert desc.detector.fwhm_mn_ka_ev == pytest.approx(140.0)
    wire = desc.to_dict()
    wire["future_key"] = 1
    wire["detector"]["future_key"] = "x"
    assert InstrumentDescription.from_dict(wire) == desc  # on the wire: ignored
    with pytest.raises(InstrumentError, match="future_key: unknown key"):
        InstrumentDescription.from_dict(wire, strict=True)  # in a file: a typo


@pytest.mark.parametrize(("old", "new", "message"), [
    ("fano = 0.115", "fano = 2.0", r"m6\.toml: detector\.fano: must be > 0 and <= 1, got 2\.0"),
    ('anode = "Rh"', 'anode = "Xx"', r"excitation\.anode: must be an element symbol"),
    ("noise_ev = 74.0", "noies_ev = 74.0", r"detector\.noise_ev: missing.*is 'noies_ev' a typo"),
    ("channels = 4096", "channels = 4096.5", r"calibration\.channels: must be a positive int"),
    ('kind = "tube"', 'kind = "laser"', r"excitation\.kind: must be one of"),
    ("thickness_um = 100.0 }", "thickness_um = -1 }", r"excitation\.window\.thickness_um"),
    ("filters = []", 'filters = [{ material = "SiO2", thickness_um = 10 }]',
     r"excitation\.filters\[0\]\.density_g_cm3: needed for the compound 'SiO2'"),
    ('atmosphere = "air"', 'atmosphere = "Ar"', r"geometry\.atmosphere: must be one of"),
    ("[calibration]", "[calibrashun]", r"calibration: missing"),
    ("noise_ev = 74.0", "noise_ev = 74.0\nfwhm_mn_ka_ev = 140",
     r"give either fwhm_mn_ka_ev or noise_ev"),
    ("range_kev = [1.6, 17.0]", 'range_kev = [1.6, 17.0]\nmaps = ["Ca", "Co", "Ca"]',
     r"fit\.maps: must be a list of distinct element symbols, got \['Ca', 'Co', 'Ca'\]"),
    ("range_kev = [1.6, 17.0]", 'range_kev = [1.6, 17.0]\nmaps = ["Ca", "Smalt"]',
     r"fit\.maps: must be a list of distinct element symbols"),
])
def test_errors_name_the_file_and_key(old, new, message):
    text = (INSTRUMENTS / "m6_jetstream.toml").read_text()
    assert old in text
    with pytest.raises(InstrumentError, match=message):
        loads(text.replace(old, new, 1), source="m6.toml")


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(InstrumentError, match=r"bad\.toml: not valid TOML"):
        loads("name = ", source="bad.toml")
    with pytest.raises(InstrumentError, match="cannot read"):
        load(tmp_path / "none.toml")


def test_simulator_builds_its_instrument_from_a_description():
    sim = pytest.importorskip("training.sim")
    m6 = load(INSTRUMENTS / "m6_jetstream.toml")
    inst = sim.Instrument.from_description(m6)
    assert inst == sim.M6_JETSTREAM  # the preset is this very description
    assert inst.grid == m6.calibration.grid and inst.fano == m6.detector.fano
    lab = _change(m6, "excitation", anode="Mo", voltage_kv=40.0)
    assert sim.Instrument.from_description(lab).anode == "Mo"
    m1 = sim.Instrument.from_description(load(INSTRUMENTS / "m1_mistral.toml"))
    assert m1 == sim.M1_MISTRAL and m1.glass_mm == 2.0
    aps = load(INSTRUMENTS / "aps_2ide.toml")
    with pytest.raises(ValueError, match="monochromatic"):
        sim.Instrument.from_description(aps)
    with pytest.raises(ValueError, match="unknown \\[simulation\\] keys"):
        sim.Instrument.from_description(dataclasses.replace(m6, simulation={"fluxx": 1.0}))
