"""The fuzz of `make fuzz` in small (issue 11): hypothesis draws a few hundred hostile
ingest messages and requests (tools.fuzz) and sends them to a real daemon while a real
scan is replayed beside them. The daemon stays up with bounded memory, refuses every
fuzzed message with the reason the protocol predicts, answers every request, counts every
refusal, and records the real scan pixel for pixel."""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.replay import replay
from proto.dataset import open_dataset
from tests.edge_support import Daemon, make_bundles, make_scan
from tools.fuzz import INGEST_CLASSES, REQUEST_CLASSES, ingest_reason
from tools.fuzz.session import Fuzzer, check, status

LIMIT = 1 << 16  # the daemon's counted message size here: too_large messages stay small


def vm_kib(pid: int, key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(),
                         re.M).group(1))


def test_fuzz_small_against_the_daemon_beside_a_real_scan(tmp_path):
    models = make_bundles(tmp_path / "models")
    scan = make_scan(tmp_path / "real.h5", 6, 7, seed=2)
    d = Daemon(models, tmp_path / "rec", "--max-message-bytes", str(LIMIT),
               log=tmp_path / "log").start()
    try:
        before = status(d.snapshot)
        rss = vm_kib(d.proc.pid, "VmRSS")
        fuzz = Fuzzer(d.ingest, d.snapshot, "real", LIMIT, too_large_bytes=LIMIT + 1)
        result: dict = {}
        real = threading.Thread(target=lambda: result.update(r=replay(
            scan, d.ingest, requests=d.snapshot, scan_id="real", dwell_s=0.05)))

        @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(rng=st.randoms(use_true_random=False),
               raw=st.lists(st.binary(max_size=300), max_size=6))
        def one_round(rng: random.Random, raw: list[bytes]) -> None:
            for _ in range(20):
                cls = rng.choice(INGEST_CLASSES)
                if (drawn := fuzz.draw_ingest(rng, cls)) is not None:
                    fuzz.send_ingest(drawn[0], cls, drawn[1])
            for b in raw:
                if (reason := ingest_reason([b], "real", LIMIT)) is not None:
                    fuzz.send_ingest([b], "hypothesis_bytes", reason)
            batch = []
            while len(batch) < 4:
                cls = rng.choice(REQUEST_CLASSES)
                if (drawn := fuzz.draw_request(rng, cls)) is not None:
                    batch.append((drawn[0], cls, drawn[1]))
            fuzz.exchange(batch, timeout_s=10)
            assert not fuzz.mismatches, fuzz.mismatches

        real.start()
        time.sleep(0.3)  # the real scan is under way: the fuzz interleaves with it
        one_round()
        real.join(60)
        fuzz.close()
        sent = sum(fuzz.ingest.sent.values())
        assert sent >= 200 and sum(fuzz.requests.sent.values()) >= 50
        r = result["r"]
        assert r.confirmed == "confirmed: 42 pixels accepted, scan closed (success)"
        want = before.counters["messages"] + sent + r.messages + 2
        deadline = time.monotonic() + 30
        while (after := status(d.snapshot)).counters["messages"] < want:
            assert time.monotonic() < deadline, after.counters
            time.sleep(0.1)
        acc = check(before, after, fuzz, r.messages + 2)
        assert acc["ok"], acc
        assert d.proc.poll() is None and not after.errors.get("internal_error")
        assert vm_kib(d.proc.pid, "VmHWM") < rss + 256 * 1024
        with open_dataset(scan) as src, open_dataset(tmp_path / "rec" / "real.h5") as rec:
            assert rec.status == "success"
            np.testing.assert_array_equal(rec.counts[...], src.counts[...])
            np.testing.assert_array_equal(rec.live_time_s, src.live_time_s)
    finally:
        d.stop()
    assert "Traceback" not in (tmp_path / "log").read_text()
