"""A big scan's start and its previews never hold the daemon's loop (ingest) for long
(issue 15 must-show: pixel to page under 1 s on a 4096 x 4096 scan at 1 kHz).

Measured on 4096 x 4096 before these: scan_start 0.9 s with ingest held (its recording's
maps read back, 0.2-0.45 s; four 16 MiB tiles a drain, twice in that turn), a snapshot
part 0.3-1.1 s. Now: the maps are lazy zeros, a drain sends one big tile at most, what
changed goes ahead of a full frame's tiles, a snapshot part is one tile's worth, and a
scan boundary's burst is its turn's only one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.canvas import Canvas
from edge.publisher import Publisher
from edge.recording import DatasetWriter
from proto import wire
from proto.dataset import open_dataset
from tests.edge_inproc import InProcess, start_message
from tests.edge_support import STREAM_GRID, make_bundles

NAMES = tuple(f"E{i}" for i in range(8))


class Sock:
    """A PUB socket that keeps what it is handed, decoded."""

    def __init__(self) -> None:
        self.sent: list[wire.Preview] = []

    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        self.sent.append(wire.from_pub_frames(frames))

    def take(self) -> list[wire.Preview]:
        out, self.sent = self.sent, []
        return out


def data_bytes(frames) -> int:
    return sum(np.asarray(f.data).nbytes + (0 if f.domain is None else f.domain.nbytes)
               for f in frames if isinstance(f, wire.Preview))


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_new_recording_does_not_read_its_maps_back(tmp_path):
    """A new 4096 x 4096 recording's per-pixel maps (acquired, live, real, marks) are zeros
    the kernel gives on first write: reading the file's fill values back touched 192 MiB
    and took 0.2-0.45 s of scan_start. What is written still reads back."""
    before = rss_bytes()
    w = DatasetWriter.create(tmp_path / "big.h5", 4096, 4096, STREAM_GRID, "uint16",
                             compression=None)
    try:
        grown = rss_bytes() - before
        assert grown < 48 << 20, f"creating the recording took {grown >> 20} MiB resident"
        rng = np.random.default_rng(0)
        x, y = np.array([0, 1, 2, 4095]), np.array([0, 0, 0, 4095])
        counts = rng.poisson(2.0, (4, STREAM_GRID.channels)).astype(np.uint16)
        w.write_pixels(x, y, counts, np.full(4, 0.01), np.full(4, 0.02), seq=7)
        w.flush()
    finally:
        w.close("abort")
    with open_dataset(tmp_path / "big.h5") as ds:
        assert np.count_nonzero(ds.acquired[0]) == 3 and ds.acquired[4095, 4095]
        np.testing.assert_array_equal(ds.counts[0, :3], counts[:3])
        np.testing.assert_array_equal(ds.counts[4095, 4095], counts[3])
        assert ds.live_time_s[0, 1] == np.float32(0.01)


def full_frame_publisher() -> tuple[Publisher, Sock, Canvas]:
    """A 64 x 64 canvas under 4 KiB tiles: rgb 4, elements 32, trust 4 tiles."""
    sock = Sock()
    p = Publisher(sock, rate_hz=10, full_every_s=1000, max_preview_bytes=4096,
                  max_reply_bytes=1 << 20)
    return p, sock, Canvas(64, 64, NAMES)


def test_a_drain_sends_one_big_tile_and_every_topic_gets_its_turn():
    """Four tiles a drain held a 4096 x 4096 scan's ingest 0.2-0.9 s a turn; now at most
    burst_bytes (one tile and small regions), and no topic's big tiles wait behind another's."""
    p, sock, canvas = full_frame_publisher()
    p.publish(canvas, "s", 0, 10.0, force=True)
    drains = [sock.take()]
    while p.pending:
        p.drain(0)
        drains.append(sock.take())
    assert all(0 < data_bytes(d) <= p.burst_bytes for d in drains)
    assert len(drains) >= 32  # elements alone is 32 tiles of 4 KiB
    assert {f.topic for d in drains[:3] for f in d} == {"rgb", "elements", "trust"}
    for topic in ("rgb", "elements", "trust"):  # every tile went out: the frame is whole
        covered = sum(f.region[2] * f.region[3] for d in drains for f in d if f.topic == topic)
        assert covered == 64 * 64


def test_what_changed_goes_ahead_of_a_full_frames_tiles():
    """A pixel written while a full frame's 36 tiles still wait goes out in the next drain,
    not after them (every frame holds the canvas as it is when sent)."""
    p, sock, canvas = full_frame_publisher()
    p.publish(canvas, "s", 0, 10.0, force=True)
    sock.take()
    one = np.array([[0.2, 0.4, 0.6]], np.float32)
    canvas.update(np.array([63]), np.array([63]), one, np.ones((1, 8), np.float32),
                  np.ones(1, np.float32))
    assert p.pending > 30
    p.publish(canvas, "s", 1, 11.0)
    got = sock.take()
    rgb = [f for f in got if f.topic == "rgb" and f.region == (63, 63, 1, 1)]
    assert rgb and tuple(rgb[0].data[0, 0]) == (51, 102, 153) and rgb[0].seq == 1
    assert data_bytes(got) <= p.burst_bytes


def test_a_snapshot_part_is_one_tiles_worth():
    """64 MiB parts held a 4096 x 4096 scan's ingest 0.3-1.1 s each while a viewer joined;
    parts now hold at most burst_bytes (whole tiles), and together the whole canvas."""
    p, _, canvas = full_frame_publisher()
    canvas.update(np.array([5]), np.array([9]), np.array([[1.0, 0, 0]], np.float32),
                  np.full((1, 8), 3.0, np.float32), np.ones(1, np.float32))
    first, n = p.snapshot_part(canvas, "s", 4)
    assert n >= 36  # 4 + 32 + 4 tiles of <= 4 KiB, ~one a part (1 MiB parts: 1)
    frames = list(first)
    for k in range(1, n):
        part, again = p.snapshot_part(canvas, "s", 4, part=k)
        assert again == n and data_bytes(part) <= p.burst_bytes
        frames.extend(part)
    assert data_bytes(first) <= p.burst_bytes
    assert data_bytes(frames) == data_bytes(p.frames(canvas, "s", 4))
    with pytest.raises(wire.ProtocolError):
        p.snapshot_part(canvas, "s", 4, part=n)


def test_scan_start_sends_one_burst_of_seq_0_frames(tmp_path):
    """A scan_start's forced frames: one burst in that turn (the loop's own publish waits
    for the next), at seq 0; the rest follow a drain a turn."""
    models = make_bundles(tmp_path / "models")
    edge = InProcess(tmp_path, models, max_preview_bytes=4096, max_reply_bytes=4096)
    sent: list = []
    real = edge.daemon.publisher.send
    edge.daemon.publisher.send = lambda topic, msg: sent.append(msg) or real(topic, msg)
    try:
        edge.daemon.burst_sent = False
        edge.send(start_message("big", 64, 64))
        previews = [m for m in sent if isinstance(m, wire.Preview)]
        assert edge.daemon.burst_sent and previews and {m.seq for m in previews} == {0}
        assert data_bytes(previews) <= edge.daemon.publisher.burst_bytes
        assert edge.daemon.publisher.pending > 0  # the rest: later turns
    finally:
        edge.close()


def test_the_full_frame_clock_stops_while_nothing_changes():
    """A scan that streams 11 s after its scan_start (a viewer joining first) got a refresh
    of rgb and trust (8 tiles of 16 MiB) with its first pixel; now the time without change
    does not count: its first pixels go out as regions, and the refresh comes once the topic
    has changed for its period."""
    p, sock, canvas = sent_full_frame(4.0, 100.0)
    for t in range(101, 130):  # 29 s, nothing new
        p.publish(canvas, "s", 0, float(t))
    assert not sock.take()
    assert rgb_regions(p, sock, canvas, 130.0, 1) == [(1, 0, 1, 1)]  # a region only
    assert rgb_regions(p, sock, canvas, 132.0, 2) == [(2, 0, 1, 1)]
    # past 4 s of change since the forced frame: the refresh's first tile, behind the region
    assert rgb_regions(p, sock, canvas, 134.5, 3) == [(3, 0, 1, 1), (0, 0, 64, 21)]


def sent_full_frame(full_every_s: float, t: float) -> tuple[Publisher, Sock, Canvas]:
    """full_frame_publisher with its period, after a forced full frame at `t` went out whole."""
    p, sock, canvas = full_frame_publisher()
    p.full_every_s = full_every_s
    p.publish(canvas, "s", 0, t, force=True)
    while p.pending:
        p.drain(0)
    sock.take()
    return p, sock, canvas


def rgb_regions(p: Publisher, sock: Sock, canvas: Canvas, t: float, x: int) -> list:
    """The rgb regions sent, in order, after writing pixel (x, 0) at time t."""
    canvas.update(np.array([x]), np.array([0]), np.full((1, 3), 0.5, np.float32),
                  np.ones((1, 8), np.float32), np.ones(1, np.float32))
    p.publish(canvas, "s", x, t)
    while p.pending:
        p.drain(0)
    return [f.region for f in sock.take() if f.topic == "rgb"]


def test_a_big_canvas_is_refreshed_a_tile_a_period_in_turn():
    """A refresh of a 4096 x 4096 canvas queued all its tiles at once (rgb and trust 4 x 16
    MiB every 8 s): a run of turns each encoding a tile, ingest waiting. Now one tile a
    period, in turn, so the whole canvas still comes every k periods; a one-tile canvas
    still gets its full frame each period."""
    p, sock, canvas = sent_full_frame(1.0, 100.0)
    got = [rgb_regions(p, sock, canvas, 100.0 + 1.01 * k, 10 + k)[1:] for k in range(1, 6)]
    rows = [(0, 0, 64, 21)], [(0, 21, 64, 21)], [(0, 42, 64, 21)], [(0, 63, 64, 1)]
    assert got == [*rows, rows[0]]
    small = Publisher(sock, rate_hz=10, full_every_s=1.0)  # 64 x 64: one frame per topic
    small.publish(canvas, "s", 0, 200.0, force=True)
    sock.take()
    canvas.update(np.array([5]), np.array([5]), np.ones((1, 3), np.float32),
                  np.ones((1, 8), np.float32), np.ones(1, np.float32))
    small.publish(canvas, "s", 1, 201.5)
    assert {f.region for f in sock.take()} == {(0, 0, 64, 64)}
