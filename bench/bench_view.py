"""The live view on a big scan: viewer memory and the time from a pixel to the page.

    python bench/bench_view.py [--size 4096] [--rate 1000] [--seconds 20] [--no-browser]

A scanner emulator opens a size x size scan (512 channels) on a real daemon (tiny random
models, recording on) and sends pixels in raster order at --rate pixels/s (10 a message);
`python -m edge view` follows the daemon; a page in headless Chromium (or, without it, a
plain WebSocket client) follows the view. Prints:
- pixel to page: for sampled messages, send time -> arrival at the page of the first
  overview region that covers the pixel and includes its message (the region's seq),
  p50 / p99 / max;
- zoom: a full-resolution 512 x 512 rectangle asked for -> its first detail region;
- the viewer's peak RSS against its bound: the canvases once (w h (3 + 4 E + 4) bytes)
  + overview and block maxima (<= 1024^2 (3 + 8 E + 4)) + one snapshot part (at most the
  daemon's Publisher.burst_bytes, 18 MiB: a tile and an eighth) + the interpreter and
  aiohttp (~100 MiB);
- the daemon's peak RSS against its bound: its RSS before the scan + the scan's per-pixel
  memory (edge.canvas.scan_memory: canvases and recording maps, 53 B a pixel with 8 maps)
  + the recorder's 64 MiB chunk cache + four copies of one drain's data (encoding a tile);
  ZeroMQ's queues are bounded apart (ingest_buffer_bytes, preview_buffer_bytes);
- the page's JS heap, for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.canvas import scan_memory  # noqa: E402
from edge.replay import connect  # noqa: E402
from proto import wire  # noqa: E402
from tests.edge_support import STREAM_GRID, Daemon, make_bundles  # noqa: E402
from tests.test_view_scene import ViewServer  # noqa: E402

PER_MESSAGE = 10
MIB = 2**20


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def send_scan(ingest: str, size: int, rate: float, seconds: float, sent: dict,
              started: threading.Event) -> None:
    """scan_start, then PER_MESSAGE pixels a message at `rate` pixels/s; sent[seq] = time."""
    push = connect(ingest)
    rng = np.random.default_rng(0)
    pool = rng.poisson(0.3, (64, PER_MESSAGE, STREAM_GRID.channels)).astype(np.uint16)
    push.send(wire.encode(wire.ScanStart("bench-view", size, size, STREAM_GRID.channels,
                                         STREAM_GRID.offset, STREAM_GRID.gain, 1.0 / rate,
                                         counts_dtype="<u2")))
    started.wait(600)  # the viewer has the scan's layout: streaming starts now
    live = np.full(PER_MESSAGE, 0.9 / rate)
    t0 = time.perf_counter()
    n = int(seconds * rate / PER_MESSAGE)
    for k in range(n):
        i = np.arange(k * PER_MESSAGE, (k + 1) * PER_MESSAGE)
        msg = wire.Spectra("bench-view", k + 1, (i % size).astype(np.uint16),
                           (i // size).astype(np.uint16), live, live * 1.05, pool[k % 64])
        delay = t0 + k * PER_MESSAGE / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        push.send(wire.encode(msg))
        sent[k + 1] = time.time()
    push.send(wire.encode(wire.ScanEnd("bench-view", "abort", n * PER_MESSAGE)))
    push.close(5000)


def watch_daemon(previews: str, arrivals: list, stop: threading.Event) -> None:
    """The daemon's own rgb previews as they leave it (a plain subscriber), for the split."""
    import zmq

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"rgb")
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.connect(previews)
    while not stop.is_set():
        if sub.poll(100):
            m = wire.from_pub_frames(sub.recv_multipart())
            x, y, w, h = m.region
            arrivals.append([time.time() * 1e3, "rgb", "o", 0, x, y, w, h, m.seq])
    sub.close(0)


def latencies(sent: dict, arrivals: list, size: int, level: int, after_s: float = 0.0
              ) -> np.ndarray:
    """Per sampled message (sent `after_s` or more after the first): its send time -> the
    first overview rgb region holding it."""
    regions = sorted(a for a in arrivals if a[1] == "rgb" and a[2] == "o")
    out = []
    t0 = min(sent.values()) + after_s
    for seq in [q for q in list(sent)[::10] if sent[q] >= t0]:
        i = (seq - 1) * PER_MESSAGE + PER_MESSAGE - 1  # the message's last pixel
        bx, by = (i % size) >> level, (i // size) >> level
        hit = next((t for t, _, _, _, x, y, w, h, s in regions
                    if s >= seq and x <= bx < x + w and y <= by < y + h), None)
        if hit is not None:
            out.append(hit / 1e3 - sent[seq])
    return np.asarray(out)


class Page:
    """Headless Chromium on the view, or a plain WebSocket client when it is absent."""

    def __init__(self, url: str, browser: bool) -> None:
        self.url, self.driver, self.arrivals = url, None, []
        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
        if browser and chromium and driver:
            import os

            from selenium import webdriver
            os.environ["SE_OFFLINE"] = "true"
            opts = webdriver.ChromeOptions()
            opts.binary_location = chromium
            for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
                      "--disable-dev-shm-usage", "--window-size=1100,1200"):
                opts.add_argument(a)
            self.driver = webdriver.Chrome(
                options=opts, service=webdriver.ChromeService(executable_path=driver))
            self.driver.get(url)
        else:
            self._thread = threading.Thread(target=lambda: asyncio.run(self._ws()), daemon=True)
            self._stop = False
            self.state: dict = {}
            self._thread.start()

    @property
    def kind(self) -> str:
        return "headless Chromium" if self.driver else "WebSocket client (no Chromium)"

    async def _ws(self) -> None:
        import struct

        import aiohttp
        async with aiohttp.ClientSession() as s, s.ws_connect(self.url + "ws",
                                                              max_msg_size=0) as ws:
            self._ws_conn = ws
            while not self._stop:
                try:
                    m = await ws.receive(timeout=0.5)
                except TimeoutError:
                    continue
                if m.type == aiohttp.WSMsgType.TEXT:
                    d = json.loads(m.data)
                    if d["t"] == "scan":
                        self.state = {"W": d["width"], "level": d["level"]}
                    continue
                if m.type != aiohttp.WSMsgType.BINARY:
                    break
                (n,) = struct.unpack_from("<I", m.data)
                h = json.loads(m.data[4:4 + n])
                self.arrivals.append([time.time() * 1e3, h["topic"], h["layer"], h["level"],
                                      h["x"], h["y"], h["w"], h["h"], h["seq"]])

    def poll(self) -> None:
        if self.driver:
            new = self.driver.execute_script(
                "const a = window.__view.stats.arrivals.splice(0); return a;")
            self.arrivals.extend(new)

    def layout(self) -> dict:
        if self.driver:
            return self.driver.execute_script("return window.__view.state();")
        return self.state

    def zoom(self, x: int, y: int, w: int, h: int) -> None:
        if self.driver:  # the WebSocket client does not zoom
            self.driver.execute_script(f"window.__view.zoomTo({x}, {y}, {w}, {h});")

    def heap_mib(self) -> float | None:
        if not self.driver:
            return None
        return self.driver.execute_script(
            "return performance.memory ? performance.memory.usedJSHeapSize : null;") / MIB

    def close(self) -> None:
        if self.driver:
            self.driver.quit()
        else:
            self._stop = True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="scan width = height (default 4096)")
    ap.add_argument("--rate", type=float, default=1000.0, help="pixels/s (default 1000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="streaming time (default 20)")
    ap.add_argument("--no-browser", action="store_true", help="a WebSocket client, no Chromium")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-view-"))
    d = view = page = None
    try:
        models = make_bundles(work / "models")
        d = Daemon(models, work / "rec", log=work / "daemon.log").start()
        view = ViewServer(d, work / "view.log").start()
        base, dbase = rss_mib(view.proc.pid)[0], rss_mib(d.proc.pid)[0]
        page = Page(view.url + "/", browser=not args.no_browser)
        sent: dict[int, float] = {}
        started, done = threading.Event(), threading.Event()
        daemon_out: list = []
        spy = threading.Thread(target=watch_daemon, args=(d.previews, daemon_out, done))
        spy.start()
        sender = threading.Thread(target=send_scan, args=(d.ingest, args.size, args.rate,
                                                          args.seconds, sent, started))
        t0 = time.monotonic()
        sender.start()
        while page.layout().get("W") != args.size:
            assert time.monotonic() - t0 < 600, "the page never got the scan's layout"
            time.sleep(0.2)
        t_layout = time.monotonic() - t0
        page.poll()
        page.arrivals.clear()
        started.set()
        zoom_asked = zoom_at = None
        while sender.is_alive():
            time.sleep(0.5)
            page.poll()
            if page.driver and zoom_asked is None and time.monotonic() - t0 > t_layout + 5:
                zoom_asked = time.time()
                page.zoom(0, 0, 512, 512)
        sender.join()
        time.sleep(1.5)
        page.poll()
        done.set()
        spy.join()
        at_daemon = latencies(sent, daemon_out, args.size, 0)
        daemon_settled = latencies(sent, daemon_out, args.size, 0, after_s=5.0)
        level = page.layout().get("level", 0)
        lat = latencies(sent, page.arrivals, args.size, level)
        settled = latencies(sent, page.arrivals, args.size, level, after_s=5.0)
        if zoom_asked:
            zoom_at = next((a[0] / 1e3 for a in page.arrivals
                            if a[2] == "d" and a[0] / 1e3 >= zoom_asked), None)
        cur, peak = rss_mib(view.proc.pid)
        dcur, dpeak = rss_mib(d.proc.pid)
        e = 8
        px = args.size * args.size
        side = min(args.size, 1024)
        part = min(64 * MIB, 16 * MIB * 9 // 8)  # the daemon's defaults (edge.publisher)
        bound = (px * (3 + 4 * e + 4) + side * side * (3 + 8 * e + 4) + part) / MIB + 100
        print(f"# live view, {args.size} x {args.size} scan, {args.rate:.0f} pixels/s for "
              f"{args.seconds:.0f} s ({len(sent) * PER_MESSAGE} pixels), page: {page.kind}")
        print(f"scan start -> page has the layout (snapshot of a {args.size}^2 canvas): "
              f"{t_layout:.1f} s; overview level {level} ({args.size >> level} px a side)")
        for what, v in (("pixel -> the daemon's preview", at_daemon),
                        ("pixel -> page", lat),
                        ("from 5 s after the first pixel: pixel -> the daemon's preview",
                         daemon_settled),
                        ("from 5 s after the first pixel: pixel -> page", settled)):
            if len(v):
                print(f"{what}: p50 {np.median(v) * 1e3:.0f} ms, p99 "
                      f"{np.percentile(v, 99) * 1e3:.0f} ms, max {v.max() * 1e3:.0f} ms "
                      f"({len(v)} sampled messages)")
            else:
                print(f"{what}: no sample arrived")
        if len(lat):
            p99 = np.percentile(lat, 99)
            print(f"whole run, pixel -> page p99 {p99:.2f} s: "
                  f"{'under' if p99 < 1 else 'OVER'} the 1 s of issue 15")
        if zoom_asked:
            took = f"{(zoom_at - zoom_asked) * 1e3:.0f} ms" if zoom_at else "no detail came"
            print(f"zoom to 512 x 512 -> full-resolution region on the page: {took}")
        print(f"viewer RSS: {base:.0f} MiB idle, {cur:.0f} MiB now, peak {peak:.0f} MiB; "
              f"bound {bound:.0f} MiB (canvases once + overview + one snapshot part + "
              f"~100 MiB runtime): {'within' if peak <= bound else 'OVER'}")
        heap = page.heap_mib()
        import urllib.request
        st = json.loads(urllib.request.urlopen(view.url + "/state", timeout=5).read())
        print(f"viewer snapshots taken: {st['resyncs']}; arrivals at the page: "
              f"{len(page.arrivals)}")
        dbound = dbase + (sum(scan_memory(args.size, args.size, e)) + 64 * MIB + 4 * part) / MIB
        print(f"daemon RSS: {dbase:.0f} MiB idle, {dcur:.0f} MiB now, peak {dpeak:.0f} MiB; "
              f"bound {dbound:.0f} MiB (idle + the scan's per-pixel memory + chunk cache + "
              f"a drain's encoding): {'within' if dpeak <= dbound else 'OVER'}"
              + (f"; page JS heap {heap:.0f} MiB" if heap is not None else ""))
        return 0 if len(lat) and peak <= bound and dpeak <= dbound else 1
    finally:
        if page:
            page.close()
        if view:
            view.stop()
        if d:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
