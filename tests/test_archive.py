"""The archive on Dask (issue 16): a LocalCluster of 2 workers labels several datasets bit for
bit like the single-process path; a block that fails once is retried; one that always fails
is named and the exit status is non-zero; reruns skip what is done and verified; reprocess
writes predictions equal to the edge engine's. One cluster for the module (start-up is slow
on 2 cores); PyMca runs a cut-down config (tests/archive_support.py) to stay fast."""

from __future__ import annotations

import functools
import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("PyMca5")

from archive.__main__ import main
from archive.blocks import plan
from archive.labels import label_datasets
from archive.reprocess import reprocess
from proto import predictions
from proto.dataset import open_dataset
from tests import archive_support
from tests.edge_support import STREAM_GRID, make_bundles, make_scan, offline

HEIGHTS, WIDTH, BLOCK = [4, 2, 2], 8, 16  # 16-pixel blocks: 2 rows each -> 2 + 1 + 1 blocks


@pytest.fixture(scope="module")
def client():
    from archive.cluster import connect

    with connect(None, 2, dashboard=None, quiet=True) as c:
        yield c


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    paths = archive_support.make_scans(root / "data", HEIGHTS, WIDTH)
    cfg = archive_support.light_config(root / "light.cfg")
    return root, [str(p) for p in paths], cfg


@pytest.fixture(scope="module")
def reference(world):
    """training.labels.fit_labels (one process) on copies, with the same 16-pixel bands."""
    import training.labels as single

    root, paths, cfg = world
    saved, single._BLOCK_PIXELS = single._BLOCK_PIXELS, BLOCK
    try:
        out = []
        for p in paths:
            copy = root / f"ref_{p.rsplit('/', 1)[-1]}"
            shutil.copy(p, copy)
            out.append(single.fit_labels(copy, cfg))
        return out
    finally:
        single._BLOCK_PIXELS = saved


def labels_of(path) -> dict:
    with open_dataset(path) as ds:
        return ds.labels


def test_blocks_are_whole_rows_of_chunks_and_cover_the_scan():
    bands = plan(5, 8, 16)
    assert [(b.y0, b.y1) for b in bands] == [(0, 2), (2, 4), (4, 5)]
    assert plan(3, 40000, 16384)[0].y1 == 1  # a row wider than the budget: one row a block
    assert [(b.y0, b.y1) for b in plan(7, 4, 8, chunk_rows=4)] == [(0, 4), (4, 7)]


def test_two_workers_label_like_the_single_process_path(client, world, reference):
    _, paths, cfg = world
    s = label_datasets(client, paths, cfg.read_text(), cfg.name, block_pixels=BLOCK,
                       progress=False)
    assert not s.failed and sorted(s.done) == sorted(paths)
    assert s.spectra == sum(HEIGHTS) * WIDTH
    for path, ref in zip(paths, reference, strict=True):
        got = labels_of(path)
        assert set(got) == set(ref) and len(ref) == 8
        for el in ref:  # bit for bit (NaN where not acquired: none here)
            np.testing.assert_array_equal(got[el], ref[el], err_msg=f"{path} {el}")
        with h5py.File(path, "r") as f:
            assert "archive" in f["labels"].attrs
            assert "refinement" in f["labels/element_maps"].attrs["source"]


def test_rerun_skips_verified_and_redoes_a_tampered_dataset(client, world, reference):
    _, paths, cfg = world
    for _ in range(2):  # the second run finds every dataset done and verified
        s = label_datasets(client, paths, cfg.read_text(), cfg.name, block_pixels=BLOCK,
                           progress=False)
    assert sorted(s.skipped) == sorted(paths) and s.spectra == 0 and not s.done
    with h5py.File(paths[1], "r+") as f:
        f["labels/element_maps"][0, 0, 0] += 1.0  # the labels no longer match their marker
    s = label_datasets(client, paths, cfg.read_text(), cfg.name, block_pixels=BLOCK,
                       progress=False)
    assert s.done == [paths[1]] and len(s.skipped) == 2
    np.testing.assert_array_equal(labels_of(paths[1])["Ca"], reference[1]["Ca"])


def test_a_block_that_fails_once_is_retried_and_the_run_completes(client, world, reference,
                                                                 tmp_path):
    _, paths, cfg = world
    flaky = functools.partial(archive_support.flaky_fit, str(tmp_path), 1)
    s = label_datasets(client, [paths[0]], cfg.read_text(), cfg.name, block_pixels=BLOCK,
                       retries=1, force=True, fit=flaky, progress=False)
    assert (tmp_path / "scan0.1.failed").exists()  # the first try did fail
    assert not s.failed and s.done == [paths[0]]
    got = labels_of(paths[0])
    for el in reference[0]:
        np.testing.assert_array_equal(got[el], reference[0][el])


def test_a_block_that_always_fails_is_named_and_exit_is_nonzero(client, world, tmp_path,
                                                                capsys):
    _, paths, cfg = world
    bad = tmp_path / "bad.h5"
    shutil.copy(paths[0], bad)
    with h5py.File(bad, "r+") as f:
        del f["labels"]
    archive_support.corrupt_row(bad, 2)  # block 1 is rows 2-3
    label_datasets(client, [paths[2]], cfg.read_text(), cfg.name, block_pixels=BLOCK,
                   progress=False)  # done (or already done) before the CLI run
    rc = main(["labels", paths[2], str(bad), "--cfg", str(cfg), "--block-pixels", str(BLOCK),
               "--scheduler", client.scheduler.address, "--retries", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 1
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == 1, err
    assert str(bad) in failed[0] and "block 1 (rows 2-3) sum" in failed[0]
    assert "failed 2 times" in failed[0]
    assert "1 skipped" in out  # the good dataset: done and verified, untouched
    assert labels_of(bad) is None  # nothing half-written


def test_reprocess_writes_predictions_like_the_edge_engine(client, tmp_path):
    models = make_bundles(tmp_path / "models")
    recs = [make_scan(tmp_path / f"rec{i}.h5", 5, 7, seed=i) for i in range(2)]
    s = reprocess(client, [str(r) for r in recs], models, block_pixels=14, progress=False)
    assert not s.failed and len(s.done) == 2
    for r in recs:
        with open_dataset(r) as ds:
            ref = offline(models, ds.counts[...], ds.live_time_s, STREAM_GRID)
        p = predictions.read(r)
        np.testing.assert_allclose(np.stack(list(p.elements.values())), ref["elements"],
                                   rtol=1e-5, atol=1e-5)
        assert np.abs(p.rgb.astype(int) - ref["rgb"]).max() <= 1
        assert p.masks["inferred"].all() and p.axis_units == "mm"
        assert set(p.bundles) == {"rgb", "elements", "trust"}
    again = reprocess(client, [str(r) for r in recs], models, progress=False)
    assert len(again.skipped) == 2 and again.spectra == 0
    with h5py.File(recs[0], "r+") as f:
        f.attrs["status"] = "recording"
    s = reprocess(client, [str(recs[0])], models, force=True, progress=False)
    assert len(s.failed) == 1 and "still recording" in str(s.failed[0])
