"""Issue 11, item 13: SPEC.md and the daemon agree (seq, defaults, error paths, counters,
duplicate keys, reason order, scan boundaries). In-process daemon (tests/edge_inproc.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import h5py
import msgpack
import numpy as np
import pytest
import zmq

from edge.config import Config
from proto import wire
from proto.messages import PREVIEW_TOPICS
from tests.edge_inproc import InProcess, spectra, start_message
from tests.edge_support import make_bundles

SPEC = Path(__file__).resolve().parents[1] / "proto" / "SPEC.md"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("spec_models"))


@pytest.fixture
def edge(tmp_path, models):
    d = InProcess(tmp_path, models, sndhwm=1)
    yield d
    d.close()


def published(edge, monkeypatch) -> list:
    """What the daemon hands its PUB socket from now on (topic, message)."""
    out: list = []
    real = edge.daemon.publisher.send
    monkeypatch.setattr(edge.daemon.publisher, "send",
                        lambda topic, msg: out.append((topic, msg)) or real(topic, msg))
    return out


def test_item13_seq_is_the_last_spectra_seq(edge, monkeypatch):
    """status, previews and snapshots carry the last spectra.seq handled (SPEC 4.4, 4.5,
    4.7), not a counter of the daemon's own; a scan's first frames have seq 0."""
    sent = published(edge, monkeypatch)
    edge.send(start_message("s"))
    assert {m.seq for t, m in sent if t != "status"} == {0}
    for seq in (1, 2, 3):
        edge.send(spectra("s", seq, [(seq, 0)]))
    assert edge.status().seq == 3
    snap = edge.daemon.snapshot(PREVIEW_TOPICS)
    assert snap.seq == 3 and {f.seq for f in snap.frames} == {3}
    edge.send(spectra("s", 4, [(99, 0)]))  # refused (out_of_range), yet handled
    sent.clear()
    edge.send(wire.ScanEnd(scan_id="s", status="abort", pixel_count=4))
    assert {m.seq for _, m in sent} == {4}
    s = edge.status()
    assert s.seq == 4 and s.counters["scan_last_seq"] == 4 and s.state == "idle"


def test_item13_spec_quotes_the_daemon_defaults():
    """SPEC.md's ingest high-water mark and message size default are edge/config.py's."""
    spec, cfg = SPEC.read_text(), Config()
    hwm = re.search(r"`rcvhwm` is (\d+) messages by\s+default", spec)
    size = re.search(r"`max_message_bytes`, ([\d ]+) bytes", spec)
    assert hwm and int(hwm.group(1)) == cfg.rcvhwm
    assert size and int(size.group(1).replace(" ", "")) == cfg.max_message_bytes


def request(edge, body: bytes) -> wire.Message:
    """One request through the daemon's ROUTER socket (a DEALER, as edge.watch does)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(edge.daemon.router.getsockopt(zmq.LAST_ENDPOINT).decode())
    try:
        sock.send(body)
        deadline = time.monotonic() + 10
        while not sock.poll(10):
            edge.daemon.handle_router()
            assert time.monotonic() < deadline, "no reply"
        return wire.decode(sock.recv())
    finally:
        sock.close(0)


def test_item13_error_replies_fill_path_and_count_apart_from_ingest(edge):
    bad = msgpack.packb({"type": "snapshot_request", "version": [1, 1], "topics": ["rgb", "x"]})
    reply = request(edge, bad)
    assert isinstance(reply, wire.Error)
    assert reply.reason == "bad_value" and reply.path == "topics.1"
    reply = request(edge, wire.encode(wire.ScanEnd("s", "success", 1)))  # not a request
    assert isinstance(reply, wire.Error) and reply.reason == "unexpected_type"
    s = edge.status()
    assert s.counters["rejected_requests"] == 2
    assert s.counters["rejected_total"] == 0 and not s.errors  # ingest's alone


def test_item13_previews_sent_per_topic_let_a_subscriber_count_its_losses(edge):
    """PUB drops silently for a slow subscriber; `previews_sent.<topic>` lets it count what
    it lost (SPEC 1, 4.5). The old `previews_dropped` never counted anything: gone."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"status")
    sub.connect(edge.daemon.pub.getsockopt(zmq.LAST_ENDPOINT).decode())
    try:
        time.sleep(0.3)  # the subscription reaches the PUB socket
        before = edge.status().counters["previews_sent.status"]
        for _ in range(3000):  # a subscriber that does not read: its queues fill up
            edge.daemon.publish_status(0.0)
        got = 0
        while sub.poll(200):
            sub.recv_multipart()
            got += 1
        after = edge.status().counters
    finally:
        sub.close(0)
    assert after["previews_sent.status"] - before == 3000
    assert 0 < got < 3000  # the subscriber sees it lost 3000 - got
    assert "previews_dropped" not in after


def test_item13_duplicate_keys_are_malformed():
    body = b"\x84" + b"".join(msgpack.packb(v) for v in (
        "type", "snapshot_request", "version", [1, 1], "topics", ["rgb"], "topics", ["trust"]))
    with pytest.raises(wire.ProtocolError) as e:
        wire.decode(body)
    assert e.value.reason == "malformed"
    inner = b"\x82" + b"".join(msgpack.packb(v) for v in ("name", "M6", "name", "M1"))
    start = msgpack.packb({"type": "scan_start", "version": [1, 1], "scan_id": "s",
                           "width": 2, "height": 2, "channels": 4, "offset_kev": 0.0,
                           "gain_kev": 0.01, "dwell_s": 0.01, "instrument": {"x": 1}})
    assert isinstance(wire.decode(start), wire.ScanStart)  # without the duplicate: valid
    with pytest.raises(wire.ProtocolError) as e:  # a key twice in a nested map
        wire.decode(start.replace(b"\x81\xa1x\x01", inner))
    assert e.value.reason == "malformed"


def test_item13_reason_order(edge):
    """The first failing check names the refusal (SPEC 7 "Which reason")."""
    bad = msgpack.packb({
        "type": "spectra", "version": [1, 1], "scan_id": "s", "seq": 1, "pixels": {
            "x": {"dtype": "<u2", "shape": [1], "bytes": b"\x00\x00"},
            "y": {"dtype": "<u2", "shape": [1], "bytes": b"\x00\x00"},
            "live_time_s": {"dtype": "<f4", "shape": [1],
                            "bytes": np.float32(np.nan).tobytes()},
            "real_time_s": {"dtype": "<f4", "shape": [1], "bytes": b"\x00\x00\x80\x3f"},
            "counts": {"dtype": "<f4", "shape": [1, 2], "bytes": b"\x00" * 8}}})
    with pytest.raises(wire.ProtocolError) as e:
        wire.decode(bad)
    assert (e.value.reason, e.value.path) == ("bad_value", "pixels.live_time_s")
    edge.send(start_message("s"), spectra("other", 1, [(99, 99)]),  # unknown before range
              spectra("s", 1, [(99, 0)]))
    errors = edge.status().errors
    assert errors == {"unknown_scan": 1, "out_of_range": 1}


def test_item13_scan_start_while_open_and_reannounced(edge):
    """Re-announcing the open scan goes on; with other fields it is scan_conflict; another
    scan's start closes the open one as abort, saying so in its recording (SPEC 4.1)."""
    edge.send(start_message("a"), spectra("a", 1, [(0, 0)]), start_message("a"))
    s = edge.status()
    assert s.state == "scanning" and s.scan_id == "a" and not s.errors
    edge.send(start_message("a", width=8), spectra("a", 2, [(1, 0)]))
    s = edge.status()
    assert s.errors == {"scan_conflict": 1} and s.seq == 2  # scan a goes on
    edge.send(start_message("b"))
    assert edge.status().scan_id == "b"
    with h5py.File(edge.recordings / "a.h5", "r") as f:
        assert f.attrs["status"] == "abort"
        end = json.loads(f.attrs["end"])
    assert end["scan_end"] is None and "scan b started" in end["closed_by"]
    assert end["pixels_recorded"] == 2
