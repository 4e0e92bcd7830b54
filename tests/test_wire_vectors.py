"""Golden vectors (proto/vectors): both directions, and the files are what the script writes."""

import json
from pathlib import Path

import pytest

from proto.messages import MESSAGE_TYPES, REASONS
from proto.wire import ProtocolError, decode, encode
from tools.vectors import HERE, build, describe, write

VALID = sorted((HERE / "valid").glob("*.msgpack"))
INVALID = sorted((HERE / "invalid").glob("*.msgpack"))


def meta(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_vectors_exist_for_every_type_and_reason() -> None:
    assert {meta(p)["type"] for p in VALID} == set(MESSAGE_TYPES)
    receiver_only = {"out_of_range", "unknown_scan"}  # need a scan_start: see test_wire_rules
    assert {meta(p)["reason"] for p in INVALID} == set(REASONS) - receiver_only


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_decodes_to_its_description(path: Path) -> None:
    desc = meta(path)
    msg = decode(path.read_bytes())
    assert desc["type"] == msg.TYPE
    assert describe(msg)["fields"] == desc["fields"]
    assert msg == build(desc)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_description_encodes_to_the_vector_bytes(path: Path) -> None:
    desc = meta(path)
    if desc["encode"] is None:
        pytest.skip("hand-packed vector (future minor / omitted optional keys)")
    assert encode(build(desc), **desc["encode"]) == path.read_bytes()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_vector_refused_with_its_reason(path: Path) -> None:
    want = meta(path)
    with pytest.raises(ProtocolError) as err:
        decode(path.read_bytes())
    assert (err.value.reason, err.value.path) == (want["reason"], want["path"])


def test_regeneration_is_deterministic_and_matches_the_repo(tmp_path: Path) -> None:
    write(tmp_path)
    for sub in ("valid", "invalid"):
        ours = sorted(p.name for p in (HERE / sub).iterdir())
        fresh = sorted(p.name for p in (tmp_path / sub).iterdir())
        assert ours == fresh, f"{sub}: run `python -m proto.vectors` and commit the result"
        for name in fresh:
            assert (tmp_path / sub / name).read_bytes() == (HERE / sub / name).read_bytes(), name


def test_spectra_fast_path_agrees_with_the_careful_path() -> None:
    """The hot path may only accept what the careful path accepts, with the same result."""
    import msgpack

    from proto import wire

    for path in [*VALID, *INVALID]:
        try:
            m = msgpack.unpackb(path.read_bytes(), use_list=False)
        except ValueError:
            continue
        if not isinstance(m, dict) or m.get("type") != "spectra":
            continue
        outcomes = []
        for check in (wire._fast_spectra, wire._check_spectra):
            wire._last_scan_id = m.get("scan_id")  # so the fast path really runs
            try:
                outcomes.append(check(m, ""))
            except ProtocolError as e:
                outcomes.append((e.reason, e.path))
        assert outcomes[0] == outcomes[1], path.stem
