"""A bundle states what it was trained for (issue 12 items 2, 5): export reads the training
scene back for the instrument identity, the energy range with signal, the dwell and
count-rate ranges and the in-domain subspace; the bundle loader checks domain.npy's hash;
spectra of the training instrument are inside, another instrument's outside."""

import json

import numpy as np
import pytest

from export.domain import describe
from export.tiny import tiny_graph, tiny_manifest_fields
from proto.bundle import BundleError, load_bundle, write_bundle
from proto.dataset import open_dataset
from proto.instrument import load
from training.preprocess import MODEL_GRID, rates_from_counts
from training.scenes import make_scene
from training.sim.instruments import INSTRUMENTS_DIR


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    return {n: make_scene(n, out, tiny=True, progress=False, png=False)
            for n in ("m6_corpus", "m6_ioannis", "m1_child")}


def _rates(path):
    with open_dataset(path) as ds:
        counts = np.asarray(ds.counts).reshape(-1, ds.shape[2])
        live = np.asarray(ds.live_time_s, np.float64).reshape(-1)
        return rates_from_counts(counts, live, ds.grid, MODEL_GRID), live


def test_export_states_instrument_and_domain(scenes, tmp_path):
    m6 = load(INSTRUMENTS_DIR / "m6_jetstream.toml")
    with open_dataset(scenes["m6_corpus"]) as ds:  # the scene stores its description
        assert ds.instrument["fingerprint"] == m6.fingerprint()
        assert ds.instrument["description"]["excitation"]["spot_um"] == 580.0
    info = {"kind": "elements", "grid": MODEL_GRID.to_dict(),
            "train_data": {"scene": "m6_corpus_tiny", "path": str(scenes["m6_corpus"])}}
    fields, subspace = describe(info, tmp_path / "no_data_folder")
    (ident,) = fields["instruments"]
    assert (ident["name"], ident["fingerprint"]) == ("M6 Jetstream", m6.fingerprint())
    d = fields["domain"]
    # where the counts are: above the grid's empty bottom edge, up to the continuum's end
    assert MODEL_GRID.low + 0.05 < d["energy_kev"][0] <= 1.5 and d["energy_kev"][1] > 15.0
    assert d["dwell_s"][0] == pytest.approx(0.01, rel=0.01)
    assert 0 < d["count_rate_cps"][0] < d["count_rate_cps"][1]

    bundle = write_bundle(tmp_path / "b", tiny_graph("elements").SerializeToString(),
                          tiny_manifest_fields("elements") | fields, subspace)
    again = load_bundle(bundle.folder)
    assert again.subspace is not None and again.manifest.identities[0].name == "M6 Jetstream"
    manifest = json.loads((bundle.folder / "manifest.json").read_text())
    assert manifest["domain"]["subspace"]["components"] == len(subspace.components)

    own, own_live = _rates(scenes["m6_ioannis"])  # held out, same instrument
    other, other_live = _rates(scenes["m1_child"])  # another instrument
    assert subspace.outside(own, own_live).mean() < 0.1
    assert subspace.outside(other, other_live).mean() > 0.9

    (bundle.folder / "domain.npy").write_bytes(b"\x93NUMPY tampered")
    with pytest.raises(BundleError, match=r"domain\.npy: sha256 does not match"):
        load_bundle(bundle.folder)
    (bundle.folder / "domain.npy").unlink()
    with pytest.raises(BundleError, match=r"missing domain\.npy"):
        load_bundle(bundle.folder)


def test_without_the_training_file_nothing_is_stated(tmp_path):
    info = {"kind": "rgb", "grid": MODEL_GRID.to_dict(), "train_data": {"scene": "gone"}}
    assert describe(info, tmp_path) == ({}, None)
