"""A dataset file's pixels as counts per live second on a bundle grid, read block by block:
what training.residual.train_residual takes as `rates` for a scene too big for memory (an M6
corpus is 4 GB as float32 on its own 4096-channel grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from proto.dataset import open_dataset
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid, Rebinner, counts_per_live_second


class ScanRates:
    """A dataset file's pixels as counts per live second on `grid`, read block by block
    (an M6 corpus is 4 GB as float32 on its own grid): len(), rows[a:b], .live, .truth."""

    def __init__(self, path: str | Path, grid: EnergyGrid) -> None:
        self.path, self.grid = Path(path), grid
        with open_dataset(self.path) as ds:
            self.shape = ds.shape
            self.live = np.asarray(ds.live_time_s, np.float64).reshape(-1)
            maps = ds.element_maps or {}
            self.maps = {k: np.asarray(v, np.float32).reshape(-1) for k, v in maps.items()}
            self.panels = list((ds.scan or {}).get("panels", []))  # a simulated scene's
            self._rebin = Rebinner(ds.grid, grid)

    def truth(self, outputs: tuple[str, ...]) -> np.ndarray:
        """(N, G) the file's ground-truth maps in `outputs` order (0 where a map of the
        simulator's elements is absent); an element the simulator does not map is refused."""
        if unknown := [e for e in outputs if e not in self.maps and e not in ELEMENTS]:
            raise ValueError(f"no ground truth for {', '.join(unknown)}: the simulator maps "
                             f"{', '.join(ELEMENTS)} (map others with make calibrate)")
        n = len(self)
        return np.stack([self.maps.get(e, np.zeros(n, np.float32)) for e in outputs], axis=1)

    def __len__(self) -> int:
        return int(self.shape[0] * self.shape[1])

    def paintings(self) -> dict[str, np.ndarray]:
        """(N,) bool per painting (panel) the scene states; none for a scan that states none."""
        h, w = self.shape[:2]
        masks = {}
        for i, p in enumerate(self.panels):
            mask = np.zeros((h, w), bool)
            mask[p["y0"]:p["y0"] + p["height"], p["x0"]:p["x0"] + p["width"]] = True
            masks[p.get("name", f"panel {i}")] = mask.reshape(-1)
        return masks

    def held_out(self, fraction: float = 0.2) -> np.ndarray:
        """(N,) bool: the last `fraction` of the rows of each panel (of the scan when it
        states none): every painting's materials among the held-out pixels. (A whole panel
        held out lacks the elements absent from that painting, so the choice of what to keep
        for them would rest on nothing: Cu in m6_corpus's last panel.)"""
        h, w = self.shape[:2]
        mask = np.zeros((h, w), bool)
        for p in self.panels or [{"y0": 0, "x0": 0, "height": h, "width": w}]:
            rows = max(1, round(p["height"] * fraction))
            y1 = p["y0"] + p["height"]
            mask[y1 - rows:y1, p["x0"]:p["x0"] + p["width"]] = True
        return mask.reshape(-1)

    def __getitem__(self, rows: slice) -> np.ndarray:
        a, b, _ = rows.indices(len(self))
        w, c = self.shape[1], self.shape[2]
        y0, y1 = a // w, -(-b // w)
        with open_dataset(self.path) as ds:
            block = np.asarray(ds.counts[y0:y1]).reshape(-1, c)[a - y0 * w:b - y0 * w]
        live = np.maximum(self.live[a:b], 1e-12)
        return counts_per_live_second(block, live, self._rebin)
