"""Issue 11, items 2, 3, 4 and 7: nothing lost, nothing silent (SPEC.md 4.2, 4.5, DATASET.md).

An in-process daemon (tests/edge_inproc.py) takes the messages straight into its ingest
handler, so every count below is exact; the recorder's flush is made to fail like a full
disk where a test needs it.
"""

from __future__ import annotations

import errno
import json
import threading

import h5py
import numpy as np
import pytest
import zmq

from edge.recording import DatasetWriter
from edge.replay import replay
from proto import wire
from proto.dataset import open_dataset, write_dataset
from tests.edge_inproc import CHANNELS, InProcess, spectra, start_message
from tests.edge_support import STREAM_GRID, make_bundles


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("loss_models"))


@pytest.fixture
def edge(tmp_path, models):
    d = InProcess(tmp_path, models, flush_pixels=4, flush_every_s=60.0)
    yield d
    d.close()


def acquired(path) -> int:
    with h5py.File(path, "r") as f:  # plain HDF5: a closed recording is no SWMR file
        return int(np.count_nonzero(f["acquired"][...]))


def end_of(path) -> tuple[str, dict]:
    with h5py.File(path, "r") as f:
        return str(f.attrs["status"]), json.loads(f.attrs.get("end", "{}"))


def test_item2_disk_full_refuses_what_is_not_on_disk(edge, monkeypatch):
    """A write error (disk full) at a flush: every pixel not yet on disk is refused and
    counted as refused (record_error, in pixels and messages), none is counted accepted,
    the scanner reads it from the scan's status counters, the file is closed `fail` with
    no sidecar, the scan's later spectra are refused, and the next scan records fine."""
    real_flush = DatasetWriter.flush
    full = {"on": False}

    def flush(self):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_flush(self)

    monkeypatch.setattr(DatasetWriter, "flush", flush)
    edge.send(start_message("full"), spectra("full", 1, [(0, 0), (1, 0), (2, 0), (3, 0)]))
    s = edge.status()
    assert s.counters["accepted"] == 4 and s.counters["scan_pixels_recorded"] == 4

    full["on"] = True
    edge.send(spectra("full", 2, [(0, 1), (1, 1)]))  # 2 pending: below flush_pixels
    edge.send(spectra("full", 3, [(2, 1), (3, 1)]))  # 4 pending: the flush fails
    edge.send(spectra("full", 4, [(0, 2), (1, 2)]))  # refused on arrival
    s = edge.status()
    c = s.counters
    assert c["accepted"] == 4 and c["scan_pixels_recorded"] == 4
    assert c["scan_pixels_refused"] == 6 and c["scan_pixels_refused.record_error"] == 6
    assert c["rejected_pixels"] == 6
    assert s.errors["record_error"] == 3  # messages, not batches
    assert s.seq == 4 and s.state == "scanning"
    [path] = edge.recordings.glob("full*.h5")
    assert acquired(path) == c["accepted"]  # nothing counted accepted that is not on disk
    status, end = end_of(path)
    assert status == "fail" and end["pixels_recorded"] == 4
    assert "record_error" in end["closed_by"]
    assert not list(edge.recordings.glob("*.active.json"))  # a restart will not resume it

    edge.send(wire.ScanEnd(scan_id="full", status="success", pixel_count=10))
    s = edge.status()
    assert s.state == "idle" and s.scan_id == "full"
    assert s.counters["scan_pixels_recorded"] == 4 and s.counters["scan_pixels_refused"] == 6
    assert s.detail["scan"]["recording_status"] == "fail"

    full["on"] = False  # space again: the next scan starts and records
    edge.send(start_message("next"), spectra("next", 1, [(0, 0), (1, 0), (2, 0), (3, 0)]),
              wire.ScanEnd(scan_id="next", status="success", pixel_count=4))
    s = edge.status()
    assert s.scan_id == "next" and s.counters["scan_pixels_recorded"] == 4
    assert "internal_error" not in s.errors
    assert end_of(edge.recordings / "next.h5")[0] == "success"


def test_item2_recording_that_cannot_be_created_refuses_the_scan(edge, monkeypatch):
    """No space for a new file: the scan is refused with the reason, not an internal error."""
    def create(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DatasetWriter, "create", create)
    edge.send(start_message("nospace"), spectra("nospace", 1, [(0, 0)]))
    s = edge.status()
    assert s.errors.get("scan_refused") == 1 and s.errors.get("refused_scan") == 1
    assert "internal_error" not in s.errors
    assert "recording" in s.detail["refused_scans"]["nospace"]


def test_item3_reused_scan_ids_never_overwrite_a_recording(edge):
    """Three scans with one scan id within a second: three files, each with its own pixel."""
    for i in range(3):
        edge.send(start_message("same"), spectra("same", 1, [(i, 0)]),
                  wire.ScanEnd(scan_id="same", status="success", pixel_count=1))
    paths = sorted(edge.recordings.glob("same*.h5"))
    assert len(paths) == 3
    got = set()
    for path in paths:
        with open_dataset(path) as ds:
            assert ds.status == "success"
            (y,), (x,) = np.nonzero(ds.acquired)
            got.add((int(x), int(y)))
    assert got == {(0, 0), (1, 0), (2, 0)}


def test_item4_bad_pixels_are_recorded_marked_and_do_not_lose_their_message(edge):
    """A message of good pixels and pixels that cannot be inferred (zero live time, real <
    live, an impossible count rate): every pixel is recorded as sent; the bad ones are
    marked in the file, counted by reason and skipped by inference; nothing is refused."""
    xy = [(0, 0), (1, 0), (2, 0), (3, 0)]
    msg = spectra("odd", 1, xy, live=[0.01, 0.0, 0.01, 1e-9], real=[0.0105, 0.01, 0.005, 0.01])
    edge.send(start_message("odd"), msg)
    s = edge.status()
    c = s.counters
    assert c["scan_pixels_accepted"] == 4 and c["scan_pixels_refused"] == 0
    assert c["scan_pixels_not_inferred"] == 3 and c["not_inferred"] == 3
    assert c["scan_pixels_not_inferred.live_time"] == 1
    assert c["scan_pixels_not_inferred.real_time"] == 1
    assert c["scan_pixels_not_inferred.count_rate"] == 1
    assert c["filled"] == 1  # only the good pixel is on the canvases
    assert not s.errors
    edge.send(wire.ScanEnd(scan_id="odd", status="success", pixel_count=4))
    with open_dataset(edge.recordings / "odd.h5") as ds:
        assert ds.status == "success"
        assert ds.acquired[0].all()
        np.testing.assert_array_equal(ds.counts[0], msg.counts)
        np.testing.assert_array_equal(ds.live_time_s[0], msg.live_time_s)
        np.testing.assert_array_equal(ds.real_time_s[0], msg.real_time_s)
        np.testing.assert_array_equal(ds.file["recording/not_inferred"][0], [0, 1, 2, 3])
        assert json.loads(ds.file.attrs["end"])["pixels_not_inferred"] == {
            "live_time": 1, "real_time": 1, "count_rate": 1}


def test_item4_refused_pixels_mark_the_recording_incomplete(edge):
    """A refused pixel (outside the scan) is counted as such; the recording is not `success`."""
    edge.send(start_message("part"), spectra("part", 1, [(0, 0), (1, 0)]),
              spectra("part", 2, [(9, 0)]),  # x >= width: out_of_range, refused
              wire.ScanEnd(scan_id="part", status="success", pixel_count=3))
    s = edge.status()
    assert s.counters["scan_pixels_refused.out_of_range"] == 1
    status, end = end_of(edge.recordings / "part.h5")
    assert status == "incomplete"
    assert end["pixels_refused"] == {"out_of_range": 1} and end["pixel_count"] == 3


def test_item4_replay_of_a_dataset_with_zero_live_time(edge, tmp_path):
    """`edge replay` of a file with zero live time on some pixels streams every pixel (it
    used to die encoding them) and the daemon records all of them, the zero ones marked."""
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, (3, 4, CHANNELS)).astype(np.uint16)
    live = np.full((3, 4), 0.01, np.float32)
    live[1, 1:3] = 0.0
    path = write_dataset(tmp_path / "zeros.h5", counts, STREAM_GRID, live, live * 1.05,
                         scan={"dwell_s": 0.01})
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.setsockopt(zmq.RCVTIMEO, 20_000)  # bounded: a missing message fails the test
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    got: list[bytes] = []
    receiver = threading.Thread(target=lambda: got.extend(
        pull.recv() for _ in range(1 + 3 + 1)))  # scan_start, 3 x 4 pixels, scan_end
    receiver.start()
    try:
        result = replay(path, f"tcp://127.0.0.1:{port}", pixels_per_message=4)
        receiver.join(20)
    finally:
        pull.close(0)
    assert result.pixels == 12 and len(got) == 5
    edge.send(*got)
    s = edge.status()
    assert s.state == "idle" and s.counters["scan_pixels_recorded"] == 12
    assert s.counters["scan_pixels_not_inferred.live_time"] == 2
    with open_dataset(edge.recordings / "zeros.h5") as ds:
        assert ds.status == "success" and ds.acquired.all()
        np.testing.assert_array_equal(ds.counts[...], counts)


def test_item7_pixel_count_that_disagrees_is_incomplete_not_success(edge):
    """scan_end success whose pixel_count is not what arrived (e.g. replay --limit), or a
    seq gap: the recording is `incomplete`, its `end` attribute says why."""
    edge.send(start_message("short"), spectra("short", 1, [(0, 0), (1, 0), (2, 0)]),
              wire.ScanEnd(scan_id="short", status="success", pixel_count=12))
    status, end = end_of(edge.recordings / "short.h5")
    assert status == "incomplete"
    assert end["pixel_count"] == 12 and end["pixels_recorded"] == 3
    assert "incomplete" in edge.status().detail["last_error"]

    edge.send(start_message("gap"), spectra("gap", 1, [(0, 0)]), spectra("gap", 3, [(1, 0)]),
              wire.ScanEnd(scan_id="gap", status="success", pixel_count=2))
    status, end = end_of(edge.recordings / "gap.h5")
    assert status == "incomplete" and end["seq_missing"] == 1 and end["seq_gaps"] == 1

    edge.send(start_message("whole"), spectra("whole", 1, [(0, 0), (1, 0)]),
              wire.ScanEnd(scan_id="whole", status="success", pixel_count=2))
    assert end_of(edge.recordings / "whole.h5")[0] == "success"
