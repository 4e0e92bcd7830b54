"""The view server against a real daemon, read by a plain WebSocket client (no browser):
overview regions equal the daemon's canvases at the overview level (previews in tiles, the
snapshot in parts), a zoom brings full resolution, a click brings the recorded spectrum;
the page, the origin and bind rules; CURVE client keys."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the `view` extra (aiohttp) is not installed")

from edge.replay import replay  # noqa: E402
from edge.view.state import block_mean  # noqa: E402
from edge.watch import request  # noqa: E402
from proto import wire  # noqa: E402
from proto.dataset import open_dataset  # noqa: E402
from tests.edge_support import ROOT, Daemon  # noqa: E402
from tests.test_view_scene import ViewServer, make_line_bundles, make_painting  # noqa: E402

H, W = 40, 56  # with --max-side 32: overview level 1 (28 x 20)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    models = make_line_bundles(root / "models")
    scan = make_painting(root / "painting.h5", H, W)
    # small limits: previews come as tiles and the snapshot in parts (SPEC 4.4, 4.7)
    d = Daemon(models, root / "rec", "--max-preview-bytes", "8192", "--max-reply-bytes",
               "40000", log=root / "daemon.log").start()
    v = ViewServer(d, root / "view.log", "--max-side", "32", "--log-level", "INFO")
    try:
        v.start()
        yield d, v, scan
    finally:
        v.stop()
        d.stop()


class Page:
    """What a browser would hold: the overview and detail layers, from the messages."""

    def __init__(self) -> None:
        self.scan: dict = {}
        self.layers: dict[tuple[str, str], np.ndarray] = {}
        self.origin: dict[str, tuple[int, int]] = {"o": (0, 0)}
        self.status: dict = {}
        self.pixel: dict | None = None

    def take(self, msg) -> None:
        if msg.type == aiohttp.WSMsgType.TEXT:
            m = json.loads(msg.data)
            if m["t"] == "scan":
                self.scan, self.layers = m, {}
            elif m["t"] == "detail" and "level" in m:
                f = 1 << m["level"]
                self.origin["d"] = (m["x"] // f, m["y"] // f)
            elif m["t"] == "status":
                self.status = m
            elif m["t"] == "pixel":
                self.pixel = m
            return
        (n,) = struct.unpack_from("<I", msg.data)
        head = json.loads(msg.data[4:4 + n])
        body = msg.data[4 + n:]
        t, w, h = head["topic"], head["w"], head["h"]
        data = (np.frombuffer(body, np.uint8).reshape(h, w, 3) if t == "rgb" else
                np.frombuffer(body, np.float32).reshape((-1, h, w) if t == "elements" else (h, w)))
        f = 1 << head["level"]
        key = (t, head["layer"])
        if key not in self.layers:
            lw = -(-W // f) if head["layer"] == "o" else head["w"]
            lh = -(-H // f) if head["layer"] == "o" else head["h"]
            shape = (lh, lw, 3) if t == "rgb" else (lh, lw) if t == "trust" else (
                len(head["names"]), lh, lw)
            self.layers[key] = np.zeros(shape, data.dtype)
        ox, oy = self.origin[head["layer"]]
        x, y = head["x"] - ox, head["y"] - oy
        if t == "rgb":
            self.layers[key][y:y + h, x:x + w] = data
        elif t == "elements":
            self.layers[key][:, y:y + h, x:x + w] = data
        else:
            self.layers[key][y:y + h, x:x + w] = data


async def follow(url: str, until, page: Page, ws=None, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not until(page):
        left = deadline - time.monotonic()
        assert left > 0, f"the page did not converge; status {page.status}"
        try:
            page.take(await ws.receive(timeout=left))
        except TimeoutError:
            continue


def final_canvases(d: Daemon, scan_id: str) -> dict[str, np.ndarray]:
    """The daemon's canvases once it has closed `scan_id` (replay returns before that)."""
    d.wait(lambda s: s.state == "idle" and s.scan_id == scan_id, what=f"end of {scan_id}")
    return assemble(d)


def assemble(d: Daemon) -> dict[str, np.ndarray]:
    """The daemon's whole canvases from a snapshot's parts and tiles (SPEC 4.4, 4.7)."""
    first = request(d.snapshot, wire.SnapshotRequest(), 10.0)
    replies = [first] + [request(d.snapshot, wire.SnapshotRequest(part=i), 10.0)
                         for i in range(1, first.parts)]
    w, h = first.scan_start.width, first.scan_start.height
    out: dict[str, np.ndarray] = {}
    for f in (f for r in replies for f in r.frames):
        x0, y0, fw, fh = f.region
        data = np.asarray(f.data)
        if f.topic == "elements":
            out.setdefault("elements", np.zeros((data.shape[0], h, w), np.float32))
            out["elements"][:, y0:y0 + fh, x0:x0 + fw] = data
        else:
            out.setdefault(f.topic, np.zeros((h, w, 3) if f.topic == "rgb" else (h, w),
                                             data.dtype))
            out[f.topic][y0:y0 + fh, x0:x0 + fw] = data
    return out


def test_websocket_overview_detail_and_pixel(world):
    d, v, scan = world

    async def run():
        page = Page()
        async with aiohttp.ClientSession() as s, s.ws_connect(v.url + "/ws") as ws:
            await follow(v.url, lambda p: p.scan.get("t") == "scan", page, ws)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: replay(scan, d.ingest, scan_id="ws", pixels_per_message=16))
            ref = await asyncio.get_running_loop().run_in_executor(None, final_canvases, d, "ws")
            over = block_mean(ref["elements"], 2)

            def converged(p: Page) -> bool:
                got = p.layers.get(("elements", "o"))
                return (p.scan.get("scan_id") == "ws" and got is not None
                        and got.shape == over.shape and np.allclose(got, over, rtol=1e-5))

            await follow(v.url, converged, page, ws)
            assert page.scan["level"] == 1 and page.scan["width"] == W
            assert request(d.snapshot, wire.SnapshotRequest(), 5.0).parts > 1  # parts used
            rgb = np.rint(block_mean(ref["rgb"].transpose(2, 0, 1).astype(np.float32), 2))
            await follow(v.url, lambda p: np.array_equal(
                p.layers.get(("rgb", "o")), rgb.astype(np.uint8).transpose(1, 2, 0)), page, ws)
            # zoom on the face: full resolution there
            await ws.send_str(json.dumps({"op": "zoom", "rect": [10, 8, 20, 18]}))
            await follow(v.url, lambda p: ("elements", "d") in p.layers, page, ws)
            np.testing.assert_array_equal(page.layers[("elements", "d")],
                                          ref["elements"][:, 8:26, 10:30])
            # a click: the recorded spectrum of that pixel
            await ws.send_str(json.dumps({"op": "pixel", "x": 20, "y": 17}))
            await follow(v.url, lambda p: p.pixel is not None, page, ws)
            return page

    page = asyncio.run(run())
    with open_dataset(scan) as ds:
        np.testing.assert_array_equal(page.pixel["counts"], ds.counts[17, 20])
        assert page.pixel["live_time_s"] == pytest.approx(float(ds.live_time_s[17, 20]))
    assert page.status["scan_id"] == "ws"


def test_page_assets_and_origin_rules(world):
    _, v, _ = world

    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.get(v.url + "/") as r:
                assert r.status == 200 and "static/app.js" in await r.text()
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            for name in ("app.js", "draw.js", "status.js", "spectrum.js", "style.css"):
                async with s.get(f"{v.url}/static/{name}") as r:
                    assert r.status == 200, name
            async with s.get(v.url + "/static/cli.py") as r:
                assert r.status == 404
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await s.ws_connect(v.url + "/ws", headers={"Origin": "http://elsewhere.example"})
            assert e.value.status == 403

    asyncio.run(run())


def test_non_loopback_bind_needs_insecure():
    r = subprocess.run([sys.executable, "-m", "edge", "view", "--host", "0.0.0.0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--insecure" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_view_follows_a_curve_daemon_with_the_client_keys(tmp_path):
    import urllib.request

    from edge.security import load_client
    from tests.edge_support import make_bundles, make_scan
    from tests.test_edge_security import CurveDaemon, edge

    keys = tmp_path / "keys"
    assert edge("keys", str(keys)).returncode == 0
    d = CurveDaemon(make_bundles(tmp_path / "models"), tmp_path / "rec", "--curve-keys",
                    str(keys), keys=load_client(keys), log=tmp_path / "daemon.log").start()
    keyed = ViewServer(d, tmp_path / "keyed.log", "--curve-keys", str(keys))
    plain = ViewServer(d, tmp_path / "plain.log")

    def state(v: ViewServer) -> dict:
        return json.loads(urllib.request.urlopen(v.url + "/state", timeout=5).read())

    try:
        keyed.start()
        plain.start()
        replay(make_scan(tmp_path / "scan.h5", 3, 4), d.ingest, keys=load_client(keys),
               scan_id="secret")
        deadline = time.monotonic() + 20
        while state(keyed)["scan_id"] != "secret" or state(plain)["link"]["ok"] is not False:
            assert time.monotonic() < deadline, (state(keyed), state(plain))
            time.sleep(0.2)
        assert state(plain)["scan_id"] == ""  # no key, no answer: nothing of the scan
    finally:
        keyed.stop()
        plain.stop()
        d.stop()
