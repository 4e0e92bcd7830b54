"""The status message clients act on: typed fields only, never `detail` (SPEC.md 4.5)."""

import numpy as np

from edge.status import Stats
from edge.watch import ended_scan
from proto import wire
from tools.vectors import HERE


def test_a_scan_has_ended_when_idle_with_its_id() -> None:
    assert ended_scan(wire.Status("s1", 9, "idle")) == "s1"
    assert ended_scan(wire.Status("s1", 9, "scanning")) is None  # re-run of the same id
    assert ended_scan(wire.Status("", 0, "idle")) is None  # no scan yet
    # a detail that says otherwise is for people, not for clients
    assert ended_scan(wire.Status("s1", 9, "scanning", detail={"ended": "s1"})) is None


def test_the_golden_vector_of_an_ended_scan() -> None:
    msg = wire.decode((HERE / "valid" / "status_scan_ended.msgpack").read_bytes())
    assert isinstance(msg, wire.Status) and ended_scan(msg) == "s1"


def test_stats_give_the_typed_maps_of_a_valid_status() -> None:
    stats = Stats()
    stats.accepted, stats.messages = 12, 3
    stats.reject("bad_value", pixels=2, detail="pixels.x: bad")
    assert stats.latency_ms() == {}
    stats.latencies(np.array([1.0, 2.0, 30.0]))
    status = wire.Status(
        "s1", 4, "scanning", counters=stats.counters(), rates=stats.rates(),
        latency_ms=stats.latency_ms(), errors=stats.errors(), detail=stats.detail(),
    )
    back = wire.decode(wire.encode(status))
    assert back.counters["accepted"] == 12 and back.counters["rejected_total"] == 1
    assert back.counters["rejected_pixels"] == 2 and back.errors == {"bad_value": 1}
    assert back.latency_ms["n"] == 3.0 and back.latency_ms["max"] == 30.0
    assert set(back.rates) == {"spectra_s", "mean_spectra_s"}
    assert back.detail["last_error"].startswith("bad_value")
