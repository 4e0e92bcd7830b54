"""The recorder's incremental writer: any pixel order, resume, and survival of kill -9."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.recording import DatasetWriter
from proto.dataset import open_dataset
from proto.energy import EnergyGrid

ROOT = Path(__file__).resolve().parents[1]
GRID = EnergyGrid(-0.9555, 0.01, 128)
H, W = 6, 20


def spectrum(y: int, x: int) -> np.ndarray:
    """Deterministic per-pixel counts, so any reader can check what it got."""
    return ((np.arange(GRID.channels) * (y + 1) + x) % 500).astype(np.uint16)


@pytest.mark.parametrize("compression", ["gzip", None])
def test_pixels_in_any_order(tmp_path, compression):
    rng = np.random.default_rng(1)
    pixels = [(y, x) for y in range(H) for x in range(W)]
    order = rng.permutation(len(pixels))
    path = tmp_path / "rec.h5"
    with DatasetWriter.create(path, H, W, GRID, "uint16", {"name": "M6"}, {"id": "s1"},
                              compression=compression) as w:
        for chunk in np.array_split(order[:-10], 7):  # leave 10 pixels unacquired
            ys = np.array([pixels[i][0] for i in chunk])
            xs = np.array([pixels[i][1] for i in chunk])
            counts = np.stack([spectrum(y, x) for y, x in zip(ys, xs, strict=True)])
            w.write_pixels(xs, ys, counts, np.full(len(xs), 0.009), np.full(len(xs), 0.01))
            w.flush()
        with pytest.raises(ValueError, match="out of range"):
            w.write_pixels([W], [0], spectrum(0, 0)[None], [0.1], [0.1])
    with open_dataset(path) as ds:
        assert ds.status == "success" and ds.acquired.sum() == H * W - 10
        cube = ds.counts[...]
        for y, x in zip(*np.nonzero(ds.acquired), strict=True):
            np.testing.assert_array_equal(cube[y, x], spectrum(y, x))
            assert ds.live_time_s[y, x] == pytest.approx(0.009)
        assert not cube[~ds.acquired].any()
        assert ds.scan == {"id": "s1"}


def test_uncompressed_partial_chunks_repeats_and_read_back(tmp_path):
    """Whole chunks are written directly; partial ones are kept, evicted and read back."""
    path = tmp_path / "rec.h5"
    with DatasetWriter.create(path, H, W, GRID, "uint16", compression=None) as w:
        w._direct.max_partial = 1  # evict at once: later writes must read the chunk back
        for y in range(H):
            for xs in (np.arange(0, 5), np.arange(12, 20), np.arange(5, 12), np.arange(3, 9)):
                counts = np.stack([spectrum(y, x) + 1 for x in xs])  # the last write wins
                w.write_pixels(xs, np.full(len(xs), y), counts, np.ones(len(xs)),
                               np.ones(len(xs)))
                w.flush()
            w.write_pixels(np.arange(3, 9), np.full(6, y), np.stack(
                [spectrum(y, x) for x in range(3, 9)]), np.ones(6), np.ones(6))
        w.write_pixels(np.arange(16), np.zeros(16, int), np.stack(
            [spectrum(0, x) for x in range(16)]), np.ones(16), np.ones(16))  # one whole chunk
    with open_dataset(path, verify=True) as ds:
        assert ds.acquired.all()
        cube = ds.counts[...]
    for y in range(H):
        for x in range(W):
            want = spectrum(y, x) + (0 if (y == 0 and x < 16) or 3 <= x < 9 else 1)
            np.testing.assert_array_equal(cube[y, x], want, err_msg=f"pixel {y}, {x}")


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from edge.recording import DatasetWriter
    from proto.energy import EnergyGrid
    sys.path.insert(0, {tests!r})
    from test_dataset_writer import spectrum, H, W, GRID
    w = DatasetWriter.create({path!r}, H, W, GRID, "uint16", {{}}, {{}},
                             compression={compression!r})
    for y in range(H):
        xs = np.arange(W)
        w.write_pixels(xs, np.full(W, y), np.stack([spectrum(y, x) for x in xs]),
                       np.full(W, 0.1), np.full(W, 0.1))
        if y < 3:
            w.flush()
            print("flushed", y, flush=True)
    print("unflushed", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("compression", ["gzip", None])
def test_survives_sigkill_and_resumes(tmp_path, compression):
    path = tmp_path / "killed.h5"
    code = WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"), path=str(path),
                         compression=compression)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines[-1] == "unflushed", lines
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with open_dataset(path) as ds:
        assert ds.status == "recording"
        acquired = ds.acquired
        assert acquired[:3].all()  # every flushed row is there
        cube = ds.counts[...]
        for y, x in zip(*np.nonzero(acquired), strict=True):
            np.testing.assert_array_equal(cube[y, x], spectrum(y, x))
    # Resume the killed recording and finish the rows it lacks.
    w = DatasetWriter.resume(path)
    assert w.acquired[:3].all()
    for y in range(H):
        missing = np.flatnonzero(~w.acquired[y])
        if missing.size:
            w.write_pixels(missing, np.full(missing.size, y),
                           np.stack([spectrum(y, x) for x in missing]),
                           np.full(missing.size, 0.1), np.full(missing.size, 0.1))
    w.close("success")
    with open_dataset(path, verify=True) as ds:
        assert ds.acquired.all() and ds.status == "success"
        cube = ds.counts[...]
        for y in range(H):
            for x in range(W):
                np.testing.assert_array_equal(cube[y, x], spectrum(y, x))
