"""`edge replay FILE`: a scanner emulator streaming a dataset file to the daemon.

Pixels go out in raster or serpentine order, `pixels_per_message` per spectra
message, paced at the file's (or a given) dwell time or as fast as allowed.
The PUSH socket blocks when the daemon's queue is full (high-water marks on
both sides), so replay slows down rather than lose a pixel: back-pressure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from edge.link import Link
from edge.security import ClientKeys
from proto import wire
from proto.dataset import open_dataset
from proto.identity import stream_instrument
from proto.marks import check_instrument


@dataclass
class ReplayResult:
    scan_id: str
    pixels: int
    messages: int
    seconds: float
    confirmed: str = ""  # what the daemon confirmed, in words ("" without a link)

    @property
    def rate(self) -> float:
        return self.pixels / self.seconds if self.seconds > 0 else float("inf")


def pixel_order(height: int, width: int, order: str) -> Iterator[tuple[int, np.ndarray]]:
    """(row, x positions in scan order) per row."""
    forward = np.arange(width)
    for y in range(height):
        yield y, forward[::-1] if order == "serpentine" and y % 2 else forward


def _positive(value, fallback: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return fallback
    return v if np.isfinite(v) and v > 0 else fallback


def _known(value) -> float | None:
    """A positive number the file states, else None: the scan_start leaves it out."""
    v = _positive(value, 0.0)
    return v if v > 0 else None


def instrument_for(record) -> dict:
    """scan_start.instrument from the file's record: its identity (name, fingerprint,
    description) when it has a description, else its free-form record; {} when that would
    not pass the wire's checks (the stream is then of an unknown instrument)."""
    m = stream_instrument(record)
    try:
        check_instrument(m, "instrument")
    except wire.ProtocolError:
        return {}
    return m


def scan_start_for(ds, scan_id: str, order: str) -> wire.ScanStart:
    """The scan_start a scanner would have sent for this file: what the file says (dwell,
    optics, instrument), nothing invented; the dwell, required, falls back to the mean
    measured real time per pixel."""
    h, w, c = ds.shape
    scan = ds.scan or {}
    grid = ds.grid
    real = np.asarray(ds.real_time_s)
    mean_real = float(real[real > 0].mean()) if (real > 0).any() else 0.01
    return wire.ScanStart(
        scan_id=scan_id,
        width=w,
        height=h,
        channels=c,
        offset_kev=grid.offset,
        gain_kev=grid.gain,
        dwell_s=_positive(scan.get("dwell_s"), mean_real),
        beam_spot_um=_known(scan.get("beam_spot_um")),
        pixel_size_um=_known(scan.get("pixel_size_um")),
        instrument=instrument_for(ds.instrument),
        scan_pattern=order,
        counts_dtype=np.dtype(ds.counts.dtype).newbyteorder("<").str,
    )


def connect(endpoint: str, sndhwm: int = 1000, ctx: zmq.Context | None = None) -> zmq.Socket:
    push = (ctx or zmq.Context.instance()).socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, sndhwm)
    push.setsockopt(zmq.LINGER, 10_000)  # scan_end must reach the daemon after we return
    push.connect(endpoint)
    return push


def replay(
    path: str | Path,
    endpoint: str = "tcp://127.0.0.1:5555",
    *,
    order: str = "raster",
    dwell_s: float | None = 0.0,
    pixels_per_message: int = 1,
    scan_id: str | None = None,
    limit: int | None = None,
    end_status: str = "success",
    send_end: bool = True,
    rows: tuple[int, int] | None = None,
    push: zmq.Socket | None = None,
    progress=None,
    requests: str | None = None,
    keys: ClientKeys | None = None,
    timeout_s: float = 10.0,
) -> ReplayResult:
    """Stream a dataset file. dwell_s=None: the file's own dwell; 0: as fast as allowed.

    `rows=(y0, y1)` streams only those rows (and no scan_start when y0 > 0) so a test
    can stop mid-scan and carry on later; `limit` stops after that many pixels.

    Without `push`, replay owns its link (`edge.link.Link`): every wait is bounded by
    `timeout_s` and what is queued is delivered before it returns. With `requests` (the
    daemon's request endpoint) it also confirms that the daemon opened the scan and
    accepted every pixel (and closed the scan), else raises `LinkError` with the reason.
    """
    link = None
    if push is None:
        link = Link(endpoint, requests, keys, timeout_s)
        try:
            link.wait_connected()
            link.baseline()
        except BaseException:
            link.close()
            raise
        push = link
    try:
        return _stream(path, push, link, order=order, dwell_s=dwell_s,
                       pixels_per_message=pixels_per_message, scan_id=scan_id, limit=limit,
                       end_status=end_status, send_end=send_end, rows=rows, progress=progress)
    finally:
        if link is not None and not link.ctx.closed:
            link.close()


def _stream(path, push, link: Link | None, *, order, dwell_s, pixels_per_message, scan_id,
            limit, end_status, send_end, rows, progress) -> ReplayResult:
    sent_pixels = messages = 0
    t0 = time.perf_counter()
    with open_dataset(path) as ds:
        h, w, _ = ds.shape
        scan_id = scan_id or Path(path).stem
        start = scan_start_for(ds, scan_id, order)
        pace = start.dwell_s if dwell_s is None else dwell_s
        y0, y1 = rows or (0, h)
        if y0 == 0:
            push.send(wire.encode(start))
            if link is not None:
                link.confirm_start(scan_id)
        acquired = ds.acquired
        live_all, real_all = ds.live_time_s, ds.real_time_s
        seq = 1 + y0 * w  # from 1; stays monotonic when a later call carries on at row y0
        buf_x: list[np.ndarray] = []
        buf_y: list[np.ndarray] = []
        buf_c: list[np.ndarray] = []

        def send(xs, ys, cs) -> None:
            nonlocal seq, messages
            x = np.concatenate(xs).astype(np.uint32)
            y = np.concatenate(ys).astype(np.uint32)
            counts = np.ascontiguousarray(np.concatenate(cs))
            push.send(wire.encode(wire.Spectra(
                scan_id=scan_id, seq=seq, x=x, y=y,
                live_time_s=live_all[y, x].astype(np.float32),
                real_time_s=real_all[y, x].astype(np.float32),
                counts=counts,
            )))
            seq += 1
            messages += 1

        pending = 0
        for y, xs in pixel_order(h, w, order):
            if y < y0 or y >= y1:
                continue
            row = np.asarray(ds.counts[y])
            xs = xs[acquired[y, xs]]
            if limit is not None:
                xs = xs[: max(0, limit - sent_pixels)]
            i = 0
            while i < len(xs):
                chunk = xs[i:i + pixels_per_message - pending]
                i += len(chunk)
                buf_x.append(chunk)
                buf_y.append(np.full(len(chunk), y))
                buf_c.append(row[chunk])
                pending += len(chunk)
                sent_pixels += len(chunk)
                if pending >= pixels_per_message:
                    send(buf_x, buf_y, buf_c)
                    buf_x, buf_y, buf_c, pending = [], [], [], 0
                    if pace > 0:  # hold the scanner's clock: pixel i leaves at t0 + i * dwell
                        delay = t0 + sent_pixels * pace - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
            if progress is not None:
                progress(y, sent_pixels)
            if limit is not None and sent_pixels >= limit:
                break
        if pending:
            send(buf_x, buf_y, buf_c)
        if send_end:
            push.send(wire.encode(wire.ScanEnd(
                scan_id=scan_id, status=end_status, pixel_count=int(acquired.sum()),
            )))
    confirmed = ""
    if link is not None:
        link.drain()  # the daemon has taken every message (or LinkError)
        link.close()  # delivers what may still be queued, then the daemon can confirm it
        confirmed = link.confirm_delivery(scan_id, sent_pixels, ended=send_end)
    seconds = time.perf_counter() - t0
    return ReplayResult(scan_id, sent_pixels, messages, seconds, confirmed)
