"""A bundle set over many recordings on Dask, with the edge's own engine
(`edge.inference.Engine`: the same rebinning, live-time division and micro-batches as the
daemon), written as each recording's `predictions` group (proto/predictions.py) by the
client, through the same canvas the daemon keeps (`edge.canvas.Canvas`, `edge.maps`).

A rerun skips a recording whose predictions carry this run's marker (inputs digest, the
bundles' sha256 and the digest of the maps as stored) and still match it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from archive import blocks as _blocks
from archive.blocks import Block
from archive.cluster import ArchiveError, Failure, Runner, Task
from archive.labels import Summary
from edge.canvas import Canvas
from edge.config import Config
from edge.inference import Engine, describe, load_models, refusal
from edge.maps import write_canvas
from proto import predictions
from proto.bundle import BundleError
from proto.dataset import DatasetError, open_dataset
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid
from proto.energy_axis import MAX_HELD, decide_in_order

MARKER = "archive"


# ---- tasks (workers) ------------------------------------------------------------------
@lru_cache(maxsize=4)
def _engine(models: str, grid: EnergyGrid) -> tuple[Engine, dict[str, str]]:
    """One verified bundle set and engine per worker process, models folder and stream grid."""
    sessions = load_models(models, threads=1)
    shas = {k: s.manifest.sha256 for k, s in sessions.items()}
    return Engine(sessions, grid, Config.max_batch), shas


def infer_block(path: str, block: Block, models: str, bundles: dict[str, str],
                axis: tuple[float, float] | None = None) -> tuple:
    """(y, x, {kind: (N, K)}) for the block's acquired pixels, read on the energy axis
    `axis` (offset, gain) where the client decided one (stream_axis), else the stated."""
    with open_dataset(path) as ds:
        grid = ds.grid if axis is None else EnergyGrid(*axis, ds.grid.channels)
        acquired = ds.file["acquired"][block.rows].astype(bool)
        yy, xx = np.nonzero(acquired)
        counts = ds.counts[block.rows][yy, xx]
        live = ds.file["live_time_s"][block.rows][yy, xx]
    engine, shas = _engine(models, grid)
    if shas != bundles:  # a worker whose models folder holds other bundles than the client's
        raise RuntimeError(f"this worker's bundles in {models} differ from the client's")
    return yy + block.y0, xx, engine.run(counts, live)


# ---- the client ------------------------------------------------------------------------
def stream_axis(sessions: dict, ds) -> tuple[float, float] | None:
    """The energy axis the daemon reads this recording's stream on (proto.energy_axis,
    decided on its first pixels; rows in order stand in for the arrival order), or None."""
    check = getattr(sessions.get("elements"), "axis", None)
    if check is None:
        return None
    acquired, parts, total = np.asarray(ds.acquired), [], 0.0
    for y in range(ds.shape[0]):
        if total >= check.min_counts or sum(len(p) for p in parts) >= MAX_HELD:
            break
        if acquired[y].any():
            parts.append(np.asarray(ds.counts[y])[acquired[y]])
            total += float(parts[-1].sum())
    if not parts:
        return None
    served = decide_in_order(check, np.concatenate(parts), ds.grid).served
    return (served.offset, served.gain)


def _marker(inputs: str, bundles: dict[str, str], maps: str) -> str:
    return json.dumps({"inputs": inputs, "bundles": bundles, "maps": maps}, sort_keys=True)


def verified(path: str, bundles: dict[str, str]) -> bool:
    with open_dataset(path) as ds:
        node = ds.file.get(predictions.GROUP)
        if node is None or MARKER not in node.attrs:
            return False
        inputs = _blocks.inputs_digest(ds)
    p = predictions.read(path)
    want = _marker(inputs, bundles, _blocks.arrays_digest(p.elements))
    return p.bundles == bundles and json.loads(str(p.attrs[MARKER])) == json.loads(want)


def reprocess(
    client, paths: list[str], models: str | Path, *, block_pixels: int = 16384,
    retries: int = 2, force: bool = False, infer: Callable = infer_block,
    progress: bool = True,
) -> Summary:
    """Predictions for every recording in `paths`; each written once, by this process."""
    try:
        sessions = load_models(models, threads=1)  # verifies every bundle before any work
    except BundleError as e:
        raise ArchiveError(str(e)) from e
    bundles = {k: v["sha256"] for k, v in describe(sessions).items()}
    names = tuple(sessions["elements"].manifest.outputs) if "elements" in sessions else ELEMENTS
    models = str(Path(models).resolve())
    summary, runner = Summary(), Runner(client, retries)
    jobs: dict[str, dict] = {}
    finals = []
    for path in paths:
        try:
            if not force and verified(path, bundles):
                summary.skipped.append(path)
                continue
            with open_dataset(path) as ds:
                if reason := refusal(sessions, ds.grid):
                    raise DatasetError(path, f"these models cannot serve it: {reason}")
                h, w, _ = ds.shape
                plan = _blocks.plan_dataset(ds, block_pixels)
                pixel_um = ds.scan.get("pixel_size_um")
                axis = stream_axis(sessions, ds)
        except (DatasetError, OSError, KeyError, ValueError) as e:
            summary.failed.append(Failure(path, "open", str(e)))
            continue
        target = str(Path(path).resolve())
        jobs[path] = {"left": len(plan), "canvas": Canvas(h, w, names), "pixel_um": pixel_um}
        finals += [runner.submit(path, "infer", b, infer, target, b, models, bundles, axis)
                   for b in plan]

    def on_result(task: Task, result: tuple) -> None:
        job = jobs[task.job]
        y, x, out = result
        job["canvas"].update(x, y, out.get("rgb"), out.get("elements"), out.get("trust"))
        job["left"] -= 1
        summary.spectra += len(x)
        if job["left"] == 0:
            try:
                _write(task.job, job, bundles)
                summary.done.append(task.job)
            except Exception as e:
                summary.failed.append(Failure(task.job, "write", f"{type(e).__name__}: {e}"))

    summary.failed += runner.follow(finals, on_result, progress)
    return summary


def _write(path: str, job: dict, bundles: dict[str, str]) -> None:
    canvas: Canvas = job["canvas"]
    with open_dataset(path) as ds:
        inputs = _blocks.inputs_digest(ds)
    maps = dict(zip(canvas.element_names, canvas.elements, strict=True))
    stamp = _marker(inputs, bundles, _blocks.arrays_digest(maps))
    write_canvas(path, canvas, bundles, job["pixel_um"], source="python -m archive reprocess",
                 attrs={MARKER: stamp})
