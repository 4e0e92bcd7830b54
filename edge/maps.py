"""A scan's final canvases saved as data: the `predictions` group (proto/predictions.py) of
its own recording, written at scan end after the recording is closed (the SWMR writer
must be gone before a group can be added), by the daemon and by `archive reprocess`."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import h5py

from edge.canvas import Canvas
from proto import predictions

log = logging.getLogger("edge.maps")


def write_canvas(path: str | Path, canvas: Canvas, bundles: dict[str, str],
                 pixel_size_um: float | None, source: str,
                 attrs: dict | None = None) -> None:
    """The canvas as it stands, into `path`'s predictions group (element maps exactly as
    published, float32 counts/s; RGB; trust; the mask of pixels that have predictions)."""
    uncertainty = getattr(canvas, "uncertainty", None)  # per-element 1 sigma, when a model gives it
    masks = {"inferred": canvas.coverage}
    extra: dict = {"pixels": int(canvas.filled)}
    # how far the maps can be trusted, where the canvas tracks it (SPEC.md 4.4)
    for topic, mask in (getattr(canvas, "domain", None) or {}).items():
        masks[f"out_of_domain_{topic}"] = mask > 0
    threshold = getattr(canvas, "threshold", None)
    if threshold is not None:
        masks["unfamiliar"] = canvas.coverage & (canvas.trust > threshold)
        extra["trust_threshold"] = float(threshold)
    if getattr(canvas, "foreign", None):
        extra["foreign_topics"] = ",".join(sorted(canvas.foreign))
    predictions.write(
        path, dict(zip(canvas.element_names, canvas.elements, strict=True)),
        bundles=bundles, source=source, rgb=canvas.rgb, trust=canvas.trust,
        uncertainty=None if uncertainty is None else dict(
            zip(canvas.element_names, uncertainty, strict=True)),
        masks=masks, pixel_size_um=pixel_size_um, attrs={**extra, **(attrs or {})},
    )


def write_final_maps(scan, status: str = "") -> str:
    """At scan end (recording closed): the scan's canvases into its recording. Never raises:
    returns "" or what went wrong (the daemon logs it and keeps serving)."""
    recorder = getattr(scan, "recorder", None)
    if recorder is None or getattr(scan, "record_error", ""):
        return ""
    t0 = time.monotonic()
    try:
        with h5py.File(recorder.path, "r") as f:
            if str(f.attrs.get("status", "")) == "recording":
                return f"{recorder.path}: recording not closed, final maps not written"
        bundles = {k: s.manifest.sha256 for k, s in scan.engine.sessions.items()}
        write_canvas(recorder.path, scan.canvas, bundles,
                     getattr(scan.start, "pixel_size_um", None),
                     source=f"edge daemon at scan end (scan {scan.scan_id})",
                     attrs={"end_status": status})
    except Exception as e:  # a full disk or a broken file must not take the daemon down
        log.error("%s: writing the final maps: %s", recorder.path, e)
        return f"final maps not written: {e}"
    log.info("final maps written into %s in %.2f s", recorder.path, time.monotonic() - t0)
    return ""
