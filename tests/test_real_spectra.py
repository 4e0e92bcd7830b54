"""Report section 4 (export.real_spectra): where it goes in REPORT.md, how a calibrate summary
reads, and the ROI gain taken from PyMca's own line model where no maps exist to fit one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export import calib_eval as ev
from export.real_spectra import HEAD, model_roi_gain, scan_section, splice

ROOT = Path(__file__).resolve().parents[1]
IXRF = ROOT.parent / "shared" / "data" / "ixrf_atlas" / "ts2_01_sub_export.GeoPIXE"


def test_splice_replaces_section_4_only(tmp_path):
    report = tmp_path / "REPORT.md"
    report.write_text("# R\n\n## 3. Trust\n\nt\n\n## 4. Real spectra\n\nold\n\n## 5. Next\n\nn\n")
    splice(report, f"{HEAD}\n\nnew\n")
    text = report.read_text()
    assert "old" not in text and "new" in text and "## 3. Trust" in text and "## 5. Next" in text
    splice(report, f"{HEAD}\n\nnewer\n")
    assert report.read_text().count(HEAD) == 1 and "newer" in report.read_text()
    fresh = tmp_path / "fresh.md"
    fresh.write_text("# R\n\n## 3. Trust\n")
    splice(fresh, f"{HEAD}\n\nx\n")
    assert fresh.read_text().endswith(f"{HEAD}\n\nx\n")


def test_scan_section_renders_checks():
    ref = np.linspace(10, 100, 40)[:, None]
    h = ev.HeldOut("det1", ("Fe",), ref, np.ones_like(ref), repeat=ref * 1.5)
    h.preds[ev.FAST], h.preds[ev.ROI] = ref * 1.01, ref[::-1]
    summary = {"calibration": {"Zero": -0.012}, "wall_s": 3.0, "serves": "fast fit alone",
               "residual": "skipped", "held_out": [ev.score(h)]}
    text = scan_section("IXRF", summary, "python -m export.calibrate x")
    assert "### IXRF" in text and "Zero -0.012" in text and "| Fe |" in text
    # a repeat that is an exact multiple: gain-matched floor 0, nothing can be within it
    assert "1/2 checks pass; missed: Fe ≤floor" in text


def test_model_roi_gain_on_real_ixrf(tmp_path):
    """ROI sums times the gain from PyMca's unit line responses land near PyMca's own areas
    for lines that stand clear (Fe, Cu on the real IXRF map), with no map to fit a gain on."""
    if not IXRF.exists():
        pytest.skip(f"real data not found: {IXRF}")
    from export.calib_data import PymcaRef, load_scan
    from proto.instrument import load
    from training.preprocess import rates_from_counts
    from training.roi import roi_sums

    toml = tmp_path / "ixrf.toml"
    toml.write_text((ROOT / "training/instruments/ixrf_atlas.toml").read_text()
                    + "\n[fit]\nrange_kev = [3.0, 9.5]\n")
    desc = load(toml)
    scan = load_scan(IXRF, "det0", desc)
    fitted = PymcaRef(desc, quick=True, refine=False).fitted(scan.counts, scan.grid,
                                                             scan.live_time_s)
    outputs = fitted.model.outputs
    gain = model_roi_gain(fitted.cfg, scan.grid, outputs)
    roi = roi_sums(rates_from_counts(scan.counts, scan.live_time_s, scan.grid), outputs) * gain
    pymca = fitted.labels(scan.counts, scan.live_time_s)
    for el in ("Fe", "Cu"):
        j = outputs.index(el)
        assert abs(roi[:, j].mean() / pymca[:, j].mean() - 1) < 0.15, el
