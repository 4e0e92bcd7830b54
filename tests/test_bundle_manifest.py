"""proto.bundle: the manifest schema, write/load round trip, and refusals with reasons."""

import json
from datetime import datetime

import pytest

import proto
from proto.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    BundleError,
    Manifest,
    load_bundle,
    read_manifest,
    sha256_bytes,
    write_bundle,
)
from proto.energy import EnergyGrid

GRID = EnergyGrid(0.01, 0.02, 1024)
FIELDS = {"kind": "rgb", "grid": GRID, "output_name": "rgb", "outputs": ["R", "G", "B"],
          "units": "sRGB 0..1", "opset": 17,
          "training": {"data": "scene", "model": "mlp"}, "metrics": {"r2": 0.9}}
BLOB = b"not really onnx, proto never parses the graph"


def write(tmp_path, **changes):
    return write_bundle(tmp_path / "b", BLOB, {**FIELDS, **changes})


def edit_manifest(folder, **changes):
    path = folder / MANIFEST_FILE
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))


def test_round_trip_fills_every_field(tmp_path) -> None:
    b = write(tmp_path)
    m = load_bundle(b.folder).manifest
    d = json.loads((b.folder / MANIFEST_FILE).read_text())
    assert set(d) == {"format_version", "kind", "grid", "input_quantity", "input_name",
                      "output_name", "outputs", "units", "opset", "sha256", "created",
                      "project_version", "training", "metrics"}
    assert m.grid == GRID and m.outputs == ("R", "G", "B") and m.kind == "rgb"
    assert m.input_quantity == "counts_per_live_second" and m.input_name == "spectra"
    assert m.sha256 == sha256_bytes(BLOB) and m.project_version == proto.__version__
    assert datetime.fromisoformat(m.created).tzinfo is not None
    assert m.training["model"] == "mlp" and m.metrics == {"r2": 0.9}
    assert Manifest.from_dict(m.to_dict()) == m
    assert load_bundle(b.folder).model_bytes == BLOB


def test_tampered_model_is_refused(tmp_path) -> None:
    b = write(tmp_path)
    (b.folder / MODEL_FILE).write_bytes(BLOB + b"\0")
    with pytest.raises(BundleError, match=r"sha256 .* does not match"):
        load_bundle(b.folder)


@pytest.mark.parametrize("name, reason", [(MODEL_FILE, "missing model.onnx"),
                                          (MANIFEST_FILE, "missing manifest.json")])
def test_missing_file_is_refused(tmp_path, name, reason) -> None:
    b = write(tmp_path)
    (b.folder / name).unlink()
    with pytest.raises(BundleError, match=reason):
        load_bundle(b.folder)


def test_missing_folder_is_refused(tmp_path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize("changes, reason", [
    ({"kind": "colour"}, "kind 'colour'"),
    ({"format_version": 2}, "format_version 2 unsupported"),
    ({"format_version": "1"}, "format_version must be an integer"),
    ({"input_quantity": "counts"}, "input_quantity"),
    ({"input_name": "x"}, "input_name"),
    ({"outputs": ["R", "G"]}, "rgb outputs must be"),
    ({"outputs": "RGB"}, "list of strings"),
    ({"grid": {"offset": 0.0, "gain": -1.0, "channels": 10}}, "positive gain"),
    ({"grid": {"offset": 0.0, "channels": 10}}, "grid must be"),
    ({"grid": {"offset": 0.0, "gain": 0.02, "channels": 10.5}}, "non-numeric"),
    ({"opset": 3}, "opset 3"),
    ({"sha256": "abc"}, "sha256 must be"),
    ({"created": "yesterday"}, "ISO 8601"),
    ({"training": []}, "training must be an object"),
])
def test_invalid_manifest_is_refused(tmp_path, changes, reason) -> None:
    b = write(tmp_path)
    edit_manifest(b.folder, **changes)
    with pytest.raises(BundleError, match=reason) as e:
        load_bundle(b.folder)
    assert str(b.folder) in str(e.value)


def test_missing_key_and_bad_json_are_refused(tmp_path) -> None:
    b = write(tmp_path)
    d = json.loads((b.folder / MANIFEST_FILE).read_text())
    del d["units"], d["opset"]
    (b.folder / MANIFEST_FILE).write_text(json.dumps(d))
    with pytest.raises(BundleError, match="lacks units, opset"):
        read_manifest(b.folder)
    (b.folder / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(b.folder)


def test_unknown_keys_are_ignored(tmp_path) -> None:
    b = write(tmp_path)
    edit_manifest(b.folder, comment="added by a newer exporter")
    assert load_bundle(b.folder).manifest.kind == "rgb"


def test_kind_rules_for_trust_and_elements(tmp_path) -> None:
    with pytest.raises(BundleError, match="exactly one output"):
        write(tmp_path, kind="trust", outputs=["a", "b"])
    with pytest.raises(BundleError, match="repeat"):
        write(tmp_path, kind="elements", outputs=["Fe", "Fe"])
    b = write(tmp_path, kind="elements", output_name="elements", outputs=["Fe", "Pb"],
              units="counts/s")
    assert load_bundle(b.folder).manifest.outputs == ("Fe", "Pb")


def test_rewrite_replaces_the_bundle(tmp_path) -> None:
    write(tmp_path)
    b = write_bundle(tmp_path / "b", BLOB + b"2", FIELDS)
    assert load_bundle(b.folder).manifest.sha256 == sha256_bytes(BLOB + b"2")
    assert sorted(p.name for p in b.folder.iterdir()) == [MANIFEST_FILE, MODEL_FILE]
