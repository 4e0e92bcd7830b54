"""Issue 11, items 9-11: no client, bundle or scan size can stop the daemon's ingest.

9: bounded state (refused scans) and guarded publishing; 10: previews that cannot be
encoded, bundles over the protocol's limits, canvases over the configured memory, tiles
under the message limits, unresumable scans; 11: ZeroMQ's own message size limit, the
ingest byte budget, and all-zero spectra that cost no disk.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from edge.publisher import Publisher
from edge.replay import connect, replay
from edge.status import MAX_REFUSED_SCANS
from proto import wire
from proto.dataset import open_dataset
from tests.edge_support import Daemon, free_ports, make_bundles, make_scan


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("limits") / "models")


def narrow_start(scan_id: str) -> wire.ScanStart:
    """A scan the tiny models refuse (0-5 keV; they need 0-16 keV)."""
    return wire.ScanStart(scan_id=scan_id, width=4, height=4, channels=100, offset_kev=0.0,
                          gain_kev=0.05, dwell_s=0.01, beam_spot_um=50.0, pixel_size_um=100.0)


def test_item9_refused_scan_flood_keeps_daemon_alive(models, tmp_path):
    """4,097 refused scan_starts once crashed the daemon: refused_scans grew past the
    status message's 4,096-entry limit and the unguarded publish_status raised."""
    n = 4_200
    d = Daemon(models, tmp_path / "rec", "--status-every-s", "0.05",
               log=tmp_path / "log").start()
    push = connect(d.ingest)
    try:
        for i in range(n):
            push.send(wire.encode(narrow_start(f"refused{i}")))
        s = d.wait(lambda s: s.errors.get("scan_refused", 0) == n, timeout_s=60,
                   what="every refusal counted")
        assert d.proc.poll() is None
        refused = s.detail["refused_scans"]
        assert len(refused) == MAX_REFUSED_SCANS  # the newest ones, bounded
        assert f"refused{n - 1}" in refused and "refused0" not in refused
        # a remembered refusal still names its spectra "refused_scan" ...
        push.send(wire.encode(wire.Spectra(
            scan_id=f"refused{n - 1}", seq=1, x=np.zeros(1, np.uint16),
            y=np.zeros(1, np.uint16), live_time_s=np.full(1, 0.01, np.float32),
            real_time_s=np.full(1, 0.01, np.float32), counts=np.ones((1, 100), np.uint16))))
        s = d.wait(lambda s: s.errors.get("refused_scan", 0) == 1, what="refused spectra")
        # ... and the status publications went on (none failed to encode)
        assert s.counters["previews_failed"] == 0
    finally:
        push.close(0)
        d.stop()
    assert "Traceback" not in d.log.read_text()


def test_item9_publisher_survives_what_it_cannot_encode():
    """Any message that fails to encode is counted and logged, never raised."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:0")
    try:
        p = Publisher(pub, rate_hz=10, full_every_s=1)
        huge = wire.Status(scan_id="", seq=0, detail={f"k{i}": i for i in range(5000)})
        assert p.send("status", huge) is False
        assert p.failed == 1 and "too_large" in p.last_failure
        assert p.send("status", wire.Status(scan_id="", seq=0)) is True and p.sent == 1
    finally:
        pub.close(0)


def peak_rss(pid: int) -> int:
    """VmHWM of a process, bytes (its peak resident set so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_item11_oversized_frame_refused_by_zeromq_before_buffering(models, tmp_path):
    """A frame of any size was received whole (ZeroMQ buffered all of it) and only then
    refused; now ZeroMQ drops a sender whose frame is over max_frame_bytes first (its
    ZMQ_MAXMSGSIZE): the daemon's peak memory does not move and the next scan is served.
    A message under that but over max_message_bytes is still counted as too_large, and
    the message right behind it arrives."""
    d = Daemon(models, tmp_path / "rec", "--max-message-bytes", str(1 << 20),
               "--max-frame-bytes", str(4 << 20), log=tmp_path / "log").start()
    try:
        before = peak_rss(d.proc.pid)
        push = connect(d.ingest)
        push.send(bytes(96 << 20))  # 96 MiB in one frame
        push.close(2000)
        time.sleep(1.0)
        assert d.proc.poll() is None
        grown = peak_rss(d.proc.pid) - before
        assert grown < 24 << 20, f"peak RSS grew {grown / 2**20:.0f} MiB"
        scan = make_scan(tmp_path / "scan.h5", 3, 4)
        push = connect(d.ingest)
        push.send(bytes(2 << 20))  # over max_message_bytes, within max_frame_bytes
        replay(scan, push=push, scan_id="after", pixels_per_message=4)
        push.close()
        s = d.wait(lambda s: s.state == "idle" and s.scan_id == "after", what="next scan")
        assert s.counters["accepted"] == 12 and s.counters["messages"] == 6
        assert s.errors == {"too_large": 1}
    finally:
        d.stop()


def test_item11_ingest_queue_bounded_in_bytes(models, tmp_path):
    """ZeroMQ's RCVHWM counts messages: 200 x 64 MiB could queue. The daemon lowers it so
    that HWM x max_frame_bytes stays within ingest_buffer_bytes, and sets ZMQ_MAXMSGSIZE
    on every bound socket."""
    from edge.config import REQUEST_HWM, SUBSCRIPTION_MAX_BYTES, Config, ConfigError
    from edge.daemon import Daemon as InProcess

    assert Config().ingest_hwm * Config().max_frame_bytes <= Config().ingest_buffer_bytes
    assert Config().ingest_hwm == 4  # 1 GiB // 256 MiB
    assert Config(max_message_bytes=1 << 20, max_frame_bytes=4 << 20).ingest_hwm == 200
    with pytest.raises(ConfigError, match="ingest_buffer_bytes"):
        Config(max_frame_bytes=64 << 20, ingest_buffer_bytes=32 << 20)
    with pytest.raises(ConfigError, match="max_frame_bytes"):
        Config(max_message_bytes=64 << 20, max_frame_bytes=32 << 20)
    with pytest.raises(ConfigError, match="protocol's limit"):
        Config(max_frame_bytes=512 << 20)
    ports = free_ports(3)
    cfg = Config(*(f"tcp://127.0.0.1:{p}" for p in ports), models=str(models),
                 recordings=str(tmp_path / "rec"), record=False, threads=1,
                 max_frame_bytes=128 << 20, ingest_buffer_bytes=512 << 20)
    daemon = InProcess(cfg)
    try:
        assert daemon.pull.getsockopt(zmq.MAXMSGSIZE) == 128 << 20
        assert daemon.pull.getsockopt(zmq.RCVHWM) == 4  # 4 x 128 MiB = 512 MiB
        assert daemon.router.getsockopt(zmq.MAXMSGSIZE) == cfg.request_max_bytes == 1 << 20
        assert daemon.router.getsockopt(zmq.RCVHWM) == REQUEST_HWM
        assert daemon.pub.getsockopt(zmq.MAXMSGSIZE) == SUBSCRIPTION_MAX_BYTES
    finally:
        daemon.shutdown()


def test_item11_all_zero_sparse_message_costs_no_disk(models, tmp_path):
    """4,096 all-zero spectra of 16,384 channels: a 66 KB sparse message became 134 MB on
    disk (every chunk written). A chunk never written reads as zeros: it is not written."""
    d = Daemon(models, tmp_path / "rec", log=tmp_path / "log").start()
    h = w = 64
    c = 16384
    n = h * w
    msg = wire.Spectra(
        scan_id="zeros", seq=1, x=np.tile(np.arange(w, dtype=np.uint16), h),
        y=np.repeat(np.arange(h, dtype=np.uint16), w), live_time_s=np.full(n, 0.01, np.float32),
        real_time_s=np.full(n, 0.01, np.float32), counts=np.zeros((n, c), np.uint16))
    body = wire.encode(msg)
    assert len(body) < 70_000
    push = connect(d.ingest)
    try:
        push.send(wire.encode(wire.ScanStart(
            scan_id="zeros", width=w, height=h, channels=c, offset_kev=0.0, gain_kev=0.001,
            dwell_s=0.01, beam_spot_um=50.0, pixel_size_um=100.0, counts_dtype="<u2")))
        push.send(body)
        push.send(wire.encode(wire.ScanEnd(scan_id="zeros", status="success", pixel_count=n)))
        s = d.wait(lambda s: s.state == "idle" and s.scan_id == "zeros", timeout_s=60,
                   what="scan end")
    finally:
        push.close(0)
        d.stop()
    assert s.counters["accepted"] == n
    path = d.recordings / "zeros.h5"
    on_disk = path.stat().st_blocks * 512
    assert on_disk < 2 << 20, f"{on_disk / 1e6:.1f} MB on disk"
    with open_dataset(path) as ds:
        assert ds.acquired.all() and ds.counts.shape == (h, w, c)
        assert not np.asarray(ds.counts[::7]).any()
