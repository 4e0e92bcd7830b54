"""Issue 11, items 9-11: no client, bundle or scan size can stop the daemon's ingest.

9: bounded state (refused scans) and guarded publishing; 10: previews that cannot be
encoded, bundles over the protocol's limits, canvases over the configured memory, tiles
under the message limits, unresumable scans; 11: ZeroMQ's own message size limit, the
ingest byte budget, and all-zero spectra that cost no disk.
"""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from edge.publisher import Publisher
from edge.replay import connect
from edge.status import MAX_REFUSED_SCANS
from proto import wire
from tests.edge_support import Daemon, make_bundles


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
