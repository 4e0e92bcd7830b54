"""Helpers of the edge-only smoke test (.ci/edge_only.sh).

    python edge_only.py fixtures DIR   (full .venv: onnx) tiny bundles in DIR/models and a
                                       tiny scan DIR/scan.h5, as made on a training box
    python edge_only.py check DIR      (edge-only venv) the daemon's snapshot, recording and
                                       the watcher's PNGs against the scan, offline

`check` runs from outside the repository, so `edge` and `proto` come from the installed
package; it says so, and fails if they do not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 12, 16  # 192 pixels: a few hundred ms at any dwell


def fixtures(out: Path) -> None:
    from export.tiny import write_tiny_bundles
    from proto.dataset import write_dataset
    from proto.energy import EnergyGrid

    write_tiny_bundles(out / "models")
    # a scanner grid wider than the bundles' (0.01 .. 20.49 keV), as a real stream would be
    grid = EnergyGrid(0.0, 0.025, 1024)
    rng = np.random.default_rng(7)
    e = grid.centres()
    lines = np.stack([np.exp(-0.5 * ((e - k) / 0.07) ** 2) for k in (3.69, 6.40, 10.54, 12.61)])
    weights = rng.gamma(1.0, 20.0, (HEIGHT, WIDTH, len(lines)))
    lam = weights @ lines + 2.0 * np.exp(-e / 8.0)
    counts = rng.poisson(lam).astype(np.uint16)
    live = rng.uniform(0.008, 0.012, (HEIGHT, WIDTH)).astype(np.float32)
    write_dataset(out / "scan.h5", counts, grid, live, live * np.float32(1.04),
                  scan={"dwell_s": 0.01, "pixel_size_um": 100.0, "beam_spot_um": 50.0},
                  instrument={"name": "edge-only smoke"})
    print(f"[edge-only] fixtures: 3 bundles, a {HEIGHT}x{WIDTH} scan in {out}")


def check(work: Path, endpoint: str) -> None:
    import edge
    from edge.canvas import to_uint8
    from edge.models import ModelSession
    from edge.png import read_png
    from edge.watch import request
    from proto import wire
    from proto.dataset import open_dataset
    from proto.energy import Rebinner, counts_per_live_second

    where = Path(edge.__file__).resolve()
    if "site-packages" not in where.parts:
        fail(f"edge imported from {where}, not from the installed package")
    print(f"[edge-only] edge imported from {where.parent}")

    with open_dataset(work / "scan.h5") as ds:
        counts, live, grid = ds.counts[...], ds.live_time_s[...], ds.grid
    h, w, c = counts.shape
    flat = counts.reshape(-1, c)

    recordings = sorted((work / "recordings").glob("*.h5"))
    if len(recordings) != 1:
        fail(f"expected one recording in {work / 'recordings'}, found {recordings}")
    with open_dataset(recordings[0]) as rec:
        if not np.array_equal(rec.counts[...], counts):
            fail(f"{recordings[0].name}: recorded counts differ from the scan's")
    print(f"[edge-only] recording {recordings[0].name}: {h}x{w}x{c} counts, identical")

    reply = request(endpoint, wire.SnapshotRequest(), 10.0)
    frames = {f.topic: np.asarray(f.data) for f in reply.frames if f.full}
    status = reply.status
    if status is None or status.state != "idle" or status.counters.get("accepted") != h * w:
        fail(f"snapshot status is not idle with {h * w} accepted: {status}")
    expected = {}
    for kind in ("rgb", "elements", "trust"):
        s = ModelSession(work / "models" / kind, threads=1)
        expected[kind] = s.run(counts_per_live_second(flat, live.reshape(-1),
                                                      Rebinner(grid, s.manifest.grid)))
    rgb = frames.get("rgb")
    if rgb is None or rgb.shape != (h, w, 3):
        fail(f"snapshot has no full {h}x{w} rgb frame: {sorted(frames)}")
    diff = np.abs(rgb.astype(int) - to_uint8(expected["rgb"]).reshape(h, w, 3).astype(int))
    if diff.max() > 1:
        fail(f"snapshot rgb differs from offline inference by up to {diff.max()}")
    maps = frames.get("elements")
    want = expected["elements"].T.reshape(-1, h, w)
    if maps is None or not np.allclose(maps, want, rtol=1e-4, atol=1e-3):
        fail("snapshot element maps differ from offline inference")
    print(f"[edge-only] snapshot seq {reply.seq}: {h * w} pixels, rgb and element maps "
          "equal offline inference")

    for name in ("rgb.png", "elements.png", "trust.png"):
        p = work / "png" / name
        if not p.is_file() or p.stat().st_size < 100:
            fail(f"watch wrote no {name}")
    if read_png(work / "png" / "rgb.png").std() == 0:
        fail("watch's rgb.png is one flat colour")
    print(f"[edge-only] watch PNGs: {', '.join(p.name for p in sorted((work / 'png').iterdir()))}")


def fail(why: str) -> None:
    print(f"[edge-only] FAILED: {why}", file=sys.stderr)
    sys.exit(1)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "fixtures":
        fixtures(Path(argv[1]))
    elif len(argv) >= 3 and argv[0] == "check":
        check(Path(argv[1]), argv[2])
    elif len(argv) >= 2 and argv[0] == "status":
        s = json.loads(Path(argv[1]).read_text())
        if s["state"] != "idle" or s["counters"].get("accepted") != HEIGHT * WIDTH:
            fail(f"status is not idle with {HEIGHT * WIDTH} accepted: {s}")
        print(f"[edge-only] status: idle, {s['counters']['accepted']} accepted")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
