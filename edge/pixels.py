"""`pixel_request` (SPEC.md 4.10): one pixel's spectrum, read back from the recording.

A viewer asks when the user clicks a pixel. The answer comes from the file, never
from a preview: the open writer of the current scan (flushed first, so what is read
is what is on disk), or the closed file of the last scan. Refusals are `error`
replies, not counted as rejected messages: a click on a pixel not yet scanned is
not a fault of the scanner or the client.
"""

from __future__ import annotations

import numpy as np

from edge.scan import ScanState
from proto import wire
from proto.dataset import open_dataset


def answer(msg: wire.PixelRequest, *scans: ScanState | None) -> wire.PixelReply | wire.Error:
    """The reply to `msg` from the first of `scans` (current, last closed) with its id."""
    scan = next((s for s in scans if s is not None and s.scan_id == msg.scan_id), None)
    if scan is None:
        return wire.Error("unknown_scan", "scan_id",
                          f"{msg.scan_id!r} is neither the current nor the last scan")
    start = scan.start
    if msg.x >= start.width or msg.y >= start.height:
        return wire.Error("out_of_range", "x" if msg.x >= start.width else "y",
                          f"({msg.x}, {msg.y}) outside {start.width} x {start.height}")
    got = _read(scan, msg.x, msg.y)
    if got is None:
        return wire.Error("not_recorded", "", f"pixel ({msg.x}, {msg.y}) is not recorded")
    counts, live, real = got
    return wire.PixelReply(msg.scan_id, msg.x, msg.y, counts, float(start.offset_kev),
                           float(start.gain_kev), live, real)


def _read(scan: ScanState, x: int, y: int) -> tuple[np.ndarray, float, float] | None:
    recorder = scan.recorder
    if recorder is None:
        return None
    if not recorder.writer.closed:
        return recorder.writer.read_pixel(x, y)
    with open_dataset(recorder.path) as ds:
        if not ds.file["acquired"][y, x]:
            return None
        return (np.asarray(ds.counts[y, x]), float(ds.file["live_time_s"][y, x]),
                float(ds.file["real_time_s"][y, x]))
