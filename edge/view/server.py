"""The view's web server (aiohttp): the page, its static files, one WebSocket per browser.

The Clone thread (`edge.view.clone`) keeps `ViewState` current and calls `Hub.notify`
from its thread; the hub marks each browser's pending boxes and wakes that browser's
sender task, which builds and sends one message at a time (`edge.view.frames`), at most
every `MIN_GAP_S`. A click asks the daemon for that pixel's spectrum (`pixel_request`)
in a worker thread, one at a time per browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections import deque
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from edge.security import ClientKeys
from edge.view.clone import CloneClient
from edge.view.frames import Browser
from edge.view.state import ViewState
from proto import wire

log = logging.getLogger("edge.view")

MIN_GAP_S = 0.05  # a browser gets at most ~20 rounds of updates a second
STATIC = {"status.js": "text/javascript", "draw.js": "text/javascript",
          "spectrum.js": "text/javascript", "app.js": "text/javascript",
          "style.css": "text/css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Page:
    """One browser: its pending work, its wake-up event and a small outbox of replies."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.work = Browser()
        self.wake = asyncio.Event()
        self.wake.set()
        self.outbox: deque[str] = deque(maxlen=4)
        self.pixel_busy = False
        self.link_due = True


class Hub:
    def __init__(self, state: ViewState) -> None:
        self.state = state
        self.pages: set[Page] = set()
        self.link = {"t": "link", "ok": None, "text": "connecting to the daemon"}
        self.loop: asyncio.AbstractEventLoop | None = None

    def notify(self, kind: str, *args) -> None:
        """From the Clone thread: hand the event to the event loop."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_event, kind, *args)

    def on_event(self, kind: str, *args) -> None:
        st = self.state
        for page in self.pages:
            if kind == "change":
                page.work.mark(args[0], args[1], st.width, st.height)
            elif kind == "status":
                page.work.status_due = True
            elif kind == "link":
                page.link_due = True
            page.wake.set()
        if kind == "link":
            self.link = {"t": "link", "ok": args[0], "text": args[1]}


async def pump(hub: Hub, page: Page) -> None:
    """Send one browser what changed, one message at a time, until it goes away."""
    try:
        await _pump(hub, page)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("the sender of a page stopped")
        await page.ws.close()


async def _pump(hub: Hub, page: Page) -> None:
    loop = asyncio.get_running_loop()
    ws = page.ws
    while not ws.closed:
        await page.wake.wait()
        page.wake.clear()
        t0 = loop.time()
        if page.link_due:
            page.link_due = False
            await ws.send_str(json.dumps(hub.link))
        jobs = await loop.run_in_executor(None, page.work.jobs, hub.state)
        for job in jobs:
            try:
                msg = await loop.run_in_executor(None, job)
            except Exception:  # a bug here must not silence the page: log, go on
                log.exception("building a message for a browser failed")
                continue
            if isinstance(msg, bytes):
                await ws.send_bytes(msg)
            elif msg is not None:
                await ws.send_str(msg)
        while page.outbox:
            await ws.send_str(page.outbox.popleft())
        await asyncio.sleep(max(0.0, MIN_GAP_S - (loop.time() - t0)))


async def pixel(hub: Hub, clone: CloneClient, page: Page, x: int, y: int) -> None:
    loop = asyncio.get_running_loop()
    out: dict = {"t": "pixel", "x": x, "y": y}
    try:
        reply = await loop.run_in_executor(
            None, clone.ask, wire.PixelRequest(hub.state.scan_id, x, y), 3.0)
        if isinstance(reply, wire.PixelReply):
            out |= {"counts": reply.counts.tolist(), "offset_kev": reply.offset_kev,
                    "gain_kev": reply.gain_kev, "live_time_s": reply.live_time_s,
                    "real_time_s": reply.real_time_s}
        elif isinstance(reply, wire.Error):
            out |= {"error": reply.reason, "text": reply.detail}
        else:
            out |= {"error": "unexpected_reply", "text": type(reply).__name__}
    except (TimeoutError, wire.ProtocolError) as e:
        out |= {"error": "no_reply", "text": str(e)}
    finally:
        page.pixel_busy = False
    page.outbox.append(json.dumps(out))
    page.wake.set()


def same_origin(request: web.Request) -> bool:
    """A page from elsewhere must not read the scan through the visitor's browser."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def make_app(state: ViewState, hub: Hub, clone: CloneClient) -> web.Application:
    static = resources.files("edge.view") / "static"
    files = {name: (static / name).read_bytes() for name in ("index.html", *STATIC)}

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=files["index.html"], content_type="text/html",
                            headers=HEADERS)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type=STATIC[name], headers=HEADERS)

    async def summary(_: web.Request) -> web.Response:
        with state.lock:
            body = {"scan_id": state.scan_id, "seq": state.seq, "gen": state.gen,
                    "level": state.level, "width": state.width, "height": state.height,
                    "browsers": len(hub.pages), "resyncs": clone.resyncs,
                    "link": hub.link, "slow_page_resyncs": sum(
                        p.work.resyncs for p in hub.pages)}
        return web.json_response(body, headers=HEADERS)

    async def socket(request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 16)
        await ws.prepare(request)
        page = Page(ws)
        hub.pages.add(page)
        sender = asyncio.create_task(pump(hub, page))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    on_text(page, msg.data)
        finally:
            hub.pages.discard(page)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    async def zoom(page: Page, rect: list | None) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, page.work.zoom, state, rect)
        except (ValueError, TypeError) as e:
            log.info("ignored a zoom request: %s", e)
        page.wake.set()

    def on_text(page: Page, text: str) -> None:
        try:
            m = json.loads(text)
            op = m.get("op")
            if op == "zoom":
                asyncio.get_running_loop().create_task(zoom(page, m.get("rect")))
            elif op == "pixel" and not page.pixel_busy:
                x, y = int(m["x"]), int(m["y"])
                if 0 <= x < state.width and 0 <= y < state.height:
                    page.pixel_busy = True
                    asyncio.get_running_loop().create_task(pixel(hub, clone, page, x, y))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            log.info("ignored a browser message: %s", e)

    async def start(_: web.Application) -> None:
        hub.loop = asyncio.get_running_loop()
        clone.start()

    async def stop(_: web.Application) -> None:
        clone.stop()
        await asyncio.get_running_loop().run_in_executor(None, clone.join, 5.0)

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/static/{name}", asset),
                    web.get("/state", summary), web.get("/ws", socket)])
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def serve(host: str, port: int, previews: str, snapshot: str, *, max_side: int,
          keys: ClientKeys | None = None) -> None:
    """Run until SIGINT/SIGTERM; OSError when the address cannot be bound. `keys`: CURVE
    client keys of a daemon that requires them."""
    asyncio.run(_serve(host, port, previews, snapshot, max_side, keys))


async def _serve(host: str, port: int, previews: str, snapshot: str, max_side: int,
                 keys: ClientKeys | None) -> None:
    state = ViewState(max_side)
    hub = Hub(state)
    clone = CloneClient(previews, snapshot, state, hub.notify, keys=keys)
    runner = web.AppRunner(make_app(state, hub, clone), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        print(f"[view] live page: http://{shown}:{bound}/  (daemon previews {previews}, "
              f"requests {snapshot})", flush=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
    finally:
        await runner.cleanup()
