"""`make fuzz`: a bounded fuzz of the real daemon, interleaved with a real replay.

    python bench/fuzz.py [--ingest 100000] [--requests 10000] [--seed 0]

Starts `python -m edge serve` (tiny models, recording on, counted size limit 1 MiB), then
sends at the same time, from three senders: hostile ingest messages (tools.fuzz: random
bytes, mutated golden vectors, mutated fields, valid messages of unknown scans or of the
wrong type, multipart, oversize), hostile requests (random, mutated, reloads out of the
models root, pixel requests, snapshots, wrong types), and a real scan with
`python -m edge replay` in the middle. Then checks: the daemon is alive; its peak RSS
(VmHWM from /proc); every ingest message counted, every fuzzed one refused with the
reason the protocol predicts, every request answered and every refusal counted; the real
scan's recording equal to its source pixel for pixel. Exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proto.dataset import open_dataset  # noqa: E402
from tests.edge_support import Daemon, make_bundles, make_scan  # noqa: E402
from tools.fuzz import INGEST_CLASSES, REQUEST_CLASSES  # noqa: E402
from tools.fuzz.session import Fuzzer, check, status  # noqa: E402

MAX_MESSAGE = 1 << 20  # the daemon's counted limit here: too_large messages stay cheap
REAL = "fuzz-real"


def proc_kib(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a process, KiB (psutil is not a dependency)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))


def weighted(rng: random.Random, n: int) -> tuple[str, ...]:
    """Ingest classes, oversize ones rare (each is over a MiB)."""
    common = tuple(c for c in INGEST_CLASSES if c != "too_large")
    return common * 200 + ("too_large",) if n >= 1000 else common


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ingest", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edge-fuzz-") as tmp:
        tmp = Path(tmp)
        models = make_bundles(tmp / "models")
        scan = make_scan(tmp / "real.h5", 40, 50, seed=7)  # 2,000 pixels, 512 channels
        d = Daemon(models, tmp / "rec", "--max-message-bytes", str(MAX_MESSAGE),
                   log=tmp / "daemon.log").start()
        try:
            return run(args, d, scan, tmp)
        finally:
            d.stop()


def run(args: argparse.Namespace, d: Daemon, scan: Path, tmp: Path) -> int:
    before = status(d.snapshot)
    rss_start = proc_kib(d.proc.pid, "VmRSS")
    fuzz = Fuzzer(d.ingest, d.snapshot, REAL, MAX_MESSAGE, too_large_bytes=MAX_MESSAGE + 1)
    rng_i, rng_r = random.Random(args.seed), random.Random(args.seed + 1)
    senders = [
        threading.Thread(target=fuzz.fuzz_ingest,
                         args=(rng_i, args.ingest, weighted(rng_i, args.ingest))),
        threading.Thread(target=fuzz.fuzz_requests, args=(rng_r, args.requests, REQUEST_CLASSES)),
    ]
    t0 = time.monotonic()
    for t in senders:
        t.start()
    while sum(fuzz.ingest.sent.values()) < args.ingest // 5:  # the replay starts amid the fuzz
        time.sleep(0.05)
    during = [sum(fuzz.ingest.sent.values()), sum(fuzz.requests.sent.values())]
    replay = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(scan), "--ingest", d.ingest, "--snapshot",
         d.snapshot, "--scan-id", REAL, "--pixels-per-message", "4", "--dwell", "0.001",
         "--timeout", "60"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    during = [sum(fuzz.ingest.sent.values()) - during[0],
              sum(fuzz.requests.sent.values()) - during[1]]
    for t in senders:
        t.join()
    fuzz.close()
    sent_s = time.monotonic() - t0
    m = re.search(r"in (\d+) messages", replay.stdout)
    replay_messages = int(m.group(1)) + 2 if m else 0  # + scan_start + scan_end
    want = int(before.counters["messages"]) + sum(fuzz.ingest.sent.values()) + replay_messages
    deadline = time.monotonic() + 120
    while (after := status(d.snapshot)).counters["messages"] < want \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = d.proc.poll() is None
    hwm = proc_kib(d.proc.pid, "VmHWM") if alive else 0
    acc = check(before, after, fuzz, replay_messages)
    with open_dataset(scan) as src, open_dataset(tmp / "rec" / f"{REAL}.h5") as rec:
        exact = (rec.status == "success" and bool(rec.acquired.all())
                 and np.array_equal(rec.counts[...], src.counts[...])
                 and np.array_equal(rec.live_time_s, src.live_time_s)
                 and np.array_equal(rec.real_time_s, src.real_time_s))
    internal = after.errors.get("internal_error", 0)
    tracebacks = (tmp / "daemon.log").read_text().count("Traceback")
    report(fuzz, acc, replay, during, sent_s, alive, rss_start, hwm, exact, internal, tracebacks)
    ok = (alive and acc["ok"] and exact and replay.returncode == 0 and not internal
          and not tracebacks and hwm < rss_start + 512 * 1024)
    print(f"\nresult: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def report(fuzz, acc, replay, during, sent_s, alive, rss_start, hwm, exact, internal, tb):
    print(f"fuzz of the edge daemon: {acc['ingest_sent']} ingest + {acc['requests_sent']} "
          f"request messages in {sent_s:.1f} s, a real replay in the middle")
    print("ingest sent by class:   " + ", ".join(f"{k} {v}" for k, v in
                                                 sorted(fuzz.ingest.sent.items())))
    print("requests sent by class: " + ", ".join(f"{k} {v}" for k, v in
                                                 sorted(fuzz.requests.sent.items())))
    print(f"drawn but not sent (could have been accepted): ingest {fuzz.ingest.skipped}, "
          f"requests {fuzz.requests.skipped}")
    print(f"sent while the replay ran: {during[0]} ingest, {during[1]} requests")
    print("refusals by reason (predicted, counted by the daemon): "
          + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(acc["by_reason"].items())))
    e, c = acc["messages_counted"]
    print(f"accounted: ingest messages {c}/{e} counted (fuzz + replay), refused "
          f"{acc['refused_counted'][1]}/{acc['refused_counted'][0]}; requests answered "
          f"{acc['replies']}/{acc['requests_sent']}, refusals counted "
          f"{acc['requests_refused_counted'][1]}/{acc['requests_refused_counted'][0]}; "
          f"reply mismatches {len(acc['reply_mismatches'])} {acc['reply_mismatches'][:3]}")
    print(f"crashes: {0 if alive else 1} (daemon {'alive' if alive else 'DEAD'}), "
          f"internal errors {internal}, tracebacks in its log {tb}")
    print(f"daemon RSS: {rss_start / 1024:.0f} MiB at start, peak {hwm / 1024:.0f} MiB "
          f"(VmHWM; bound: start + 512 MiB)")
    said = (replay.stdout or replay.stderr).strip().splitlines()[-1:]
    print(f"real scan: replay exit {replay.returncode} ({' '.join(said)}); recording equal "
          f"to its source pixel for pixel: {'yes' if exact else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
