"""Helpers for the archive tests and bench: small simulated M6 scans, a light PyMca config,
a corrupt chunk, and an injected fault. Importable by Dask workers (tests is a package)."""

from __future__ import annotations

import functools
from pathlib import Path

import h5py
import numpy as np

from proto.dataset import write_dataset
from proto.elements import ELEMENTS


@functools.cache
def _mixtures(n: int, seed: int) -> tuple:
    from training import sim
    from training.pigments import bole, gold_leaf, ground, paint

    g = ground()
    stacks = [[paint("white", {"lead_white": 1}), g],
              [paint("vermilion", {"vermilion": 0.7, "lead_white": 0.3}), g],
              [gold_leaf(), bole(), g]]
    inst = sim.M6_JETSTREAM
    rates = np.stack([sim.stack_response(inst, [x.to_sim() for x in s]).rates for s in stacks])
    rng = np.random.default_rng(seed)
    acq = sim.acquire(rng.dirichlet(np.full(len(stacks), 0.3), n) @ rates, 0.05, rng, inst)
    return inst.grid, acq.counts, acq.live_time_s, acq.real_time_s


def make_scans(folder: Path, heights: list[int], width: int, seed: int = 0) -> list[Path]:
    """One scan per height, height x width simulated M6 pixels (gzip chunks, DATASET.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    grid, counts, live, real = _mixtures(sum(heights) * width, seed)
    paths, start = [], 0
    for i, h in enumerate(heights):
        s = slice(start, start + h * width)
        start += h * width
        paths.append(write_dataset(folder / f"scan{i}.h5", counts[s].reshape(h, width, -1),
                                   grid, live[s].reshape(h, width), real[s].reshape(h, width)))
    return paths


def light_config(path: Path) -> Path:
    """m6.cfg cut down for tests: the tube's strongest line as a monochromatic beam (no
    matrix), no escape or pile-up peaks, only the mapped elements. PyMca's set-up per call
    drops from ~12 s to ~0.5 s, so a test can fit many blocks; the code path is the same."""
    from training.labels import CONFIG_DIR, load_config

    cfg = load_config(CONFIG_DIR / "m6.cfg")
    fit = cfg["fit"]
    top = int(np.argmax(fit["energyweight"]))
    for key in ("energy", "energyweight", "energyflag", "energyscatter"):
        fit[key] = [fit[key][top]]
    fit["escapeflag"], fit["sumflag"] = 0, 0
    cfg["attenuators"]["Matrix"][0] = 0
    cfg["peaks"] = {k: v for k, v in cfg["peaks"].items() if k in ELEMENTS}
    cfg.write(str(path))
    return path


def corrupt_row(path: Path, row: int) -> None:
    """Overwrite the stored bytes of counts' chunk at (row, 0): gzip cannot inflate it, so
    every read of that row fails (a bad sector, a truncated copy)."""
    with h5py.File(path, "r") as f:
        info = f["counts"].id.get_chunk_info_by_coord((row, 0, 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * min(info.size, 64))


def flaky_fit(flag_dir: str, bad_block: int, path: str, block, prep):
    """archive.labels.fit_block, but block `bad_block` of each file fails on its first try
    (a flag file remembers the try across worker processes)."""
    from archive.labels import fit_block

    flag = Path(flag_dir) / f"{Path(path).stem}.{block.index}.failed"
    if block.index == bad_block and not flag.exists():
        flag.touch()
        raise RuntimeError("injected failure (first try)")
    return fit_block(path, block, prep)
