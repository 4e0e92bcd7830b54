"""PyMca fast-fit labels for many datasets on Dask: the same result as
`training.labels.store_labels`, one dataset at a time, spread over a cluster.

Per dataset: one task per block sums its acquired spectra; one task refines the fit
configuration on the sum spectrum (a full PyMca fit, as `training.labels` does); one task
per block fast-fits its pixels with `training.labels.fit_cube`. Tasks only read. The client
assembles each dataset's maps and writes them (`proto.dataset.set_labels`) once all its
blocks are in, then a marker (`labels` attribute `archive`: digests of the inputs, the
configuration and the labels) that lets a rerun skip it after checking.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from archive import blocks as _blocks
from archive.blocks import Block
from archive.cluster import Failure, Runner, Task
from proto.dataset import DatasetError, open_dataset, set_labels

MARKER = "archive"
MARKER_VERSION = 1


@dataclass
class Prepared:
    """What every block of a dataset fits with: the (refined) config and the sum spectrum."""

    cfg: object  # PyMca ConfigDict (a dict: pickles to the workers)
    total: np.ndarray
    info: dict


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    spectra: int = 0  # fitted in this run


# ---- tasks (run on the workers; they only read) -------------------------------------------
def block_sum(path: str, block: Block) -> np.ndarray:
    """Sum of the block's acquired spectra, float64 (integer counts: exact in any order)."""
    with open_dataset(path) as ds:
        counts = ds.counts[block.rows]
        acquired = ds.file["acquired"][block.rows].astype(bool)
    return counts[acquired].sum(axis=0, dtype=np.float64)


def prepare(path: str, cfg_text: str, refine: bool, *sums: np.ndarray) -> Prepared:
    """The config on this dataset's calibration, refined on its sum spectrum when asked
    (skipped, as in training.labels, when the fit cannot be done: too few counts)."""
    from training.labels import acquired_live_s, load_config, refine_config

    total = np.sum(sums, axis=0) if sums else np.zeros(0)
    with open_dataset(path) as ds:
        grid = ds.grid
        live_s = acquired_live_s(ds)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "fit.cfg"
        cfg_path.write_text(cfg_text)
        info: dict = {}
        if refine:
            try:
                cfg, info = refine_config(load_config(cfg_path, grid), total, live_s)
                return Prepared(cfg, total, info)
            except (np.linalg.LinAlgError, ValueError) as exc:
                info = {"refine_skipped": str(exc)}
        return Prepared(load_config(cfg_path, grid), total, info)


def fit_block(path: str, block: Block, prep: Prepared) -> dict[str, np.ndarray]:
    """Fast fit of one block: element -> (rows, W) counts/s (training.labels' loop body)."""
    from training.labels import fit_cube

    with open_dataset(path) as ds:
        counts = ds.counts[block.rows]
        live = ds.file["live_time_s"][block.rows]
    r, w, c = counts.shape
    block_live = np.where(live > 0, live, 1.0)
    fitted = fit_cube(counts.reshape(r * w, c), block_live, prep.cfg, ysum=prep.total)
    return {el: v.reshape(r, w) for el, v in fitted.items()}


# ---- the client ------------------------------------------------------------------------
def marker(inputs: str, cfg_text: str, refine: bool, block_pixels: int, labels: str) -> str:
    return json.dumps({"version": MARKER_VERSION, "inputs": inputs, "labels": labels,
                       "config": _blocks.text_digest(cfg_text, refine, block_pixels)},
                      sort_keys=True)


def verified(path: str | Path, cfg_text: str, refine: bool, block_pixels: int) -> bool:
    """Labels present, made from these inputs with this config, and unchanged since."""
    with open_dataset(path) as ds:
        node = ds.file.get("labels")
        if node is None or MARKER not in node.attrs or ds.labels is None:
            return False
        want = marker(_blocks.inputs_digest(ds), cfg_text, refine, block_pixels,
                      _blocks.arrays_digest(ds.labels))
        return json.loads(node.attrs[MARKER]) == json.loads(want)


def label_datasets(
    client, paths: list[str], cfg_text: str, cfg_name: str, *, refine: bool = True,
    block_pixels: int = 16384, retries: int = 2, force: bool = False,
    fit: Callable = fit_block, progress: bool = True,
) -> Summary:
    """Label every dataset in `paths`; each written once, by this process, when whole."""
    summary = Summary()
    runner = Runner(client, retries)
    jobs: dict[str, dict] = {}
    finals = []
    for path in paths:
        try:
            if not force and verified(path, cfg_text, refine, block_pixels):
                summary.skipped.append(path)
                continue
            with open_dataset(path) as ds:
                h, w, _ = ds.shape
                plan = _blocks.plan_dataset(ds, block_pixels)
                acquired = ds.acquired
        except (DatasetError, OSError) as e:
            summary.failed.append(Failure(path, "open", str(e)))
            continue
        target = str(Path(path).resolve())  # workers open the same path
        sums = [runner.submit(path, "sum", b, block_sum, target, b) for b in plan]
        prep = runner.submit(path, "prepare", None, prepare, target, cfg_text, refine, *sums,
                             deps=tuple(sums))
        jobs[path] = {"left": len(plan), "maps": {}, "h": h, "w": w, "acquired": acquired,
                      "prep": prep}
        finals += [runner.submit(path, "fit", b, fit, target, b, prep, deps=(prep,))
                   for b in plan]

    def on_result(task: Task, maps: dict[str, np.ndarray]) -> None:
        job = jobs[task.job]
        for el, values in maps.items():
            job["maps"].setdefault(el, np.zeros((job["h"], job["w"]), np.float32))[
                task.block.rows] = values
        job["left"] -= 1
        summary.spectra += task.block.pixels
        if job["left"] == 0:
            try:
                _write(task.job, job, cfg_text, cfg_name, refine, block_pixels)
                summary.done.append(task.job)
            except Exception as e:  # a full disk, a file opened elsewhere: report, go on
                summary.failed.append(Failure(task.job, "write", f"{type(e).__name__}: {e}"))

    # a dataset with a failed block never reaches left == 0: it is reported, never written
    summary.failed += runner.follow(finals, on_result, progress)
    return summary


def _write(path: str, job: dict, cfg_text: str, cfg_name: str, refine: bool,
           block_pixels: int) -> None:
    maps = job["maps"]
    for m in maps.values():
        m[~job["acquired"]] = np.nan  # a pixel never measured has no label
    info = job["prep"].result().info
    refined = ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in info.items())
    source = (f"PyMca FastXRFLinearFit (SNIP) with {cfg_name}"
              + (f"; sum-spectrum refinement: {refined}" if refined else "")
              + "; python -m archive labels (Dask)")
    set_labels(path, maps, source=source, config=cfg_text)
    with open_dataset(path) as ds:  # digest of the labels as stored, read back
        stamp = marker(_blocks.inputs_digest(ds), cfg_text, refine, block_pixels,
                       _blocks.arrays_digest(ds.labels))
    with h5py.File(path, "r+") as f:
        f["labels"].attrs[MARKER] = stamp
