"""`make soak`: consecutive `edge replay` runs of a real-size scene, every pixel checked.

    python bench/replay_soak.py [--runs 50] [--height 60 --width 120 --channels 4096]

Issue 11 item 1: `edge replay` used to lose the end of a scan about half the time while
printing success (the ZeroMQ context was never terminated, so the send linger never
applied at exit). This runs `python -m edge replay` as a subprocess `--runs` times
against one daemon (`python -m edge serve`, recording on), 16 pixels per message, as
fast as allowed (`--dwell 0`), and checks each run on the daemon's own status, apart
from what replay printed: the scan closed by its scan_end (`success`), every pixel
accepted, none refused; then that every recording holds its source pixel for pixel.

The daemon serves stand-in models of a real model's size (1000 channels -> 1024 hidden
-> outputs, random weights), so it is slower than the sender, the condition that lost
pixels. Prints one line per run and the summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proto.dataset import open_dataset  # noqa: E402
from proto.energy import EnergyGrid  # noqa: E402
from tests.edge_support import Daemon, make_bundles, make_scan  # noqa: E402


def accepted(status) -> int:
    return int(status.counters.get("scan_pixels_accepted", status.counters.get("filled", 0)))


def run_once(d: Daemon, scan: Path, scan_id: str, pixels: int, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(scan), "--ingest", d.ingest,
         "--snapshot", d.snapshot, "--scan-id", scan_id, "--pixels-per-message", "16",
         "--dwell", "0", "--timeout", "30"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - t0
    deadline = time.monotonic() + timeout_s
    while True:  # the daemon's own word, whatever replay said
        s = d.status()
        ended = s.scan_id == scan_id and s.state == "idle"
        if (ended and accepted(s) == pixels) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    end = (s.detail.get("scan") or {}).get("end_status", "")
    ok = (r.returncode == 0 and ended and end == "success" and accepted(s) == pixels
          and not s.counters.get("scan_pixels_refused", 0))
    return {"ok": ok, "rc": r.returncode, "accepted": accepted(s), "ended": ended, "end": end,
            "seconds": seconds, "said": (r.stdout or r.stderr).strip().splitlines()[-1:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--height", type=int, default=60)
    ap.add_argument("--width", type=int, default=120)
    ap.add_argument("--channels", type=int, default=4096)
    args = ap.parse_args(argv)
    pixels = args.height * args.width
    with tempfile.TemporaryDirectory(prefix="replay-soak-") as tmp:
        tmp = Path(tmp)
        models = make_bundles(tmp / "models", grid=EnergyGrid(0.05, 0.02, 1000), hidden=1024)
        grid = EnergyGrid(0.0, 20.48 / args.channels, args.channels)
        scan = make_scan(tmp / "scene.h5", args.height, args.width, grid=grid, seed=11)
        d = Daemon(models, tmp / "rec", log=tmp / "daemon.log").start()
        results = []
        try:
            print(f"{args.runs} runs of `edge replay` ({args.height} x {args.width} = {pixels} "
                  f"pixels, {args.channels} channels, 16 px/message, --dwell 0), recording on",
                  flush=True)
            for i in range(args.runs):
                res = run_once(d, scan, f"soak{i:02d}", pixels, timeout_s=30)
                results.append(res)
                print(f"run {i + 1:2d}: {'ok  ' if res['ok'] else 'FAIL'} accepted "
                      f"{res['accepted']}/{pixels}, scan_end {res['end'] or 'missing'}, "
                      f"{res['seconds']:.1f} s; replay said: {' '.join(res['said'])}",
                      flush=True)
            alive = d.proc.poll() is None
        finally:
            d.stop()
        with open_dataset(scan) as src:
            cube = np.asarray(src.counts)
        exact = 0
        for i in range(args.runs):
            with open_dataset(tmp / "rec" / f"soak{i:02d}.h5") as rec:
                exact += rec.status == "success" and bool(np.array_equal(rec.counts[...], cube))
    good = sum(r["ok"] for r in results)
    print(f"\nsummary: {good}/{args.runs} runs with every pixel ({pixels}) and scan_end "
          f"confirmed by the daemon; {exact}/{args.runs} recordings equal to the source pixel "
          f"for pixel; mean {np.mean([r['seconds'] for r in results]):.1f} s per run; "
          f"daemon {'alive' if alive else 'DEAD'}")
    return 0 if good == exact == args.runs and alive else 1


if __name__ == "__main__":
    sys.exit(main())
