"""Report section 2: spectra -> element maps (train `m6_corpus`, test `m6_ioannis` at each
dwell), the study's MLP, ours, a 1-D CNN, ROI sums and PyMca's fast fit."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from proto.elements import ELEMENTS
from training import labels, models, train
from training.catalogue import EL_TEST, EL_TRAIN, scene_path
from training.data import load_scene
from training.loop import predict
from training.metrics import element_errors
from training.preprocess import Preprocess
from training.report import CFG, fmt, md_table, scene_files, throughput, timed, torch_fn
from training.roi import RoiModel

PYMCA_CFG = labels.CONFIG_DIR / "m6.cfg"  # the test scenes are M6 scans


def pymca_maps(path: Path) -> tuple[np.ndarray, str]:
    """PyMca fast-fit maps (N, 8) counts/s for a test file via training.labels, and a note."""
    t = time.perf_counter()
    maps = labels.fit_labels(path, PYMCA_CFG)
    secs = time.perf_counter() - t
    first = next(iter(maps.values()))
    n = int(np.size(first))
    y = np.stack([np.asarray(maps.get(e, np.full(n, np.nan)), np.float32).reshape(-1)
                  for e in ELEMENTS], axis=1)
    return y, f"{secs:.1f} s ({n / secs:,.0f} spectra/s) with {PYMCA_CFG.name}"


def run_elements(data: Path, out: Path, quick: bool) -> str:
    import matplotlib.pyplot as plt

    tr = load_scene(scene_path(data, EL_TRAIN))
    tests = [load_scene(p) for p in scene_files(data, EL_TEST)]
    if not tests:
        raise FileNotFoundError(f"no {EL_TEST}*.h5 in {data}")
    tests.sort(key=lambda s: s.dwell_s)
    step = max(1, len(tr.rates) // CFG.el_stats_spectra)
    sub = tr.rates[::step]
    pre = Preprocess.fit(sub)
    scale = train.element_scale(tr.elements)
    ep = 1 if quick else CFG.el_epochs
    rng = np.random.default_rng(CFG.seed)
    nets, fit_times = {}, {}

    torch.manual_seed(CFG.seed)
    mlp = models.element_mlp(pre, scale, CFG.el_hidden)
    _, fit_times["mlp (study)"] = timed(train.train_element_net, mlp, tr.rates, tr.elements,
                                        epochs=ep, desc="element mlp")
    nets["mlp (study)"] = mlp
    torch.manual_seed(CFG.seed)
    nets["linear+mlp (ours)"], fit_times["linear+mlp (ours)"] = timed(
        train.train_element_linmlp, tr, ep)
    torch.manual_seed(CFG.seed)
    cnn = models.element_cnn(pre, scale)
    idx = rng.choice(len(tr.rates), min(len(tr.rates), CFG.cnn_subsample), replace=False)
    _, fit_times["cnn 1-D"] = timed(train.train_element_net, cnn, tr.rates[idx],
                                    tr.elements[idx], epochs=1 if quick else CFG.cnn_epochs,
                                    desc="element cnn")
    nets["cnn 1-D"] = cnn
    roi, fit_times["roi sums"] = timed(RoiModel().fit, sub, tr.elements[::step])

    preds: dict[str, dict[str, np.ndarray]] = {}
    sps: dict[str, float] = {}
    pymca_notes = []
    for s in tests:
        key = f"{s.dwell_s * 1000:g} ms"
        preds[key] = {k: predict(m, s.rates) for k, m in nets.items()}
        preds[key]["roi sums"] = roi.predict(s.rates)
        preds[key]["pymca fast fit"], note = pymca_maps(s.path)
        pymca_notes.append(f"{key}: {note}")
    for k, m in nets.items():
        sps[k] = throughput(torch_fn(m), tests[0].rates)
    sps["roi sums"] = throughput(roi.predict, tests[0].rates)

    test_desc = ", ".join(
        f"{s.name} ({s.shape[0]}x{s.shape[1]}, dwell {s.dwell_s * 1000:g} ms)" for s in tests)
    text = [
        "## 2. Spectra -> element maps (train `m6_corpus`, test `m6_ioannis`)\n",
        f"Train: {len(tr.rates)} spectra, targets = ground-truth maps (counts/s of each main "
        f"line group). Test: {test_desc}. "
        "Relative RMSE = RMSE / mean of the true map; r = Pearson correlation. The CNN trains on "
        f"a random {min(len(tr.rates), CFG.cnn_subsample)} spectra for "
        f"{1 if quick else CFG.cnn_epochs} epochs (it costs ~25x the MLP per spectrum). "
        "ROI sums: +-1 FWHM window around K-alpha1 / L-alpha1 minus a linear continuum, "
        "with a per-element gain fitted on the training maps. PyMca: "
        + "; ".join(pymca_notes) + ".\n",
    ]
    for metric, label in (("rel_rmse", "relative RMSE (lower is better)"),
                          ("pearson_r", "Pearson r (higher is better)")):
        rows = []
        for s in tests:
            key = f"{s.dwell_s * 1000:g} ms"
            for name, p in preds[key].items():
                errs = [element_errors(s.elements[:, j], p[:, j])[metric]
                        for j in range(len(ELEMENTS))]
                rows.append([key, name, *[fmt(e, 3) for e in errs]])
        text += [f"### {label}\n", md_table(["dwell", "model", *ELEMENTS], rows), ""]
    rows = [[k, fmt(fit_times.get(k), 1), f"{sps[k]:,.0f}" if k in sps else "n/a"]
            for k in fit_times]
    text += ["### training time and inference speed (2 threads)\n",
             md_table(["model", "fit s", "spectra/s"], rows), ""]

    # verdicts: MLP vs PyMca at the shortest dwell; overlaps vs ROI
    s0 = tests[0]
    key0 = f"{s0.dwell_s * 1000:g} ms"
    best_net = min(nets, key=lambda k: np.nanmean([
        element_errors(s0.elements[:, j], preds[key0][k][:, j])["rel_rmse"]
        for j in range(len(ELEMENTS))]))

    def rel(name, j):
        return element_errors(s0.elements[:, j], preds[key0][name][:, j])["rel_rmse"]

    wins = sum(rel(best_net, j) <= rel("pymca fast fit", j) for j in range(len(ELEMENTS)))
    text.append(f"- At {key0}: {best_net} has relative RMSE <= PyMca fast fit's for "
                f"{wins} of {len(ELEMENTS)} elements (goal: most).")
    for el in ("As", "Hg", "Au", "Pb"):
        j = ELEMENTS.index(el)
        text.append(f"- {el} (overlapping lines) at {key0}: {best_net} {rel(best_net, j):.3f} vs "
                    f"ROI {rel('roi sums', j):.3f}.")

    # figure: per dwell, rows = elements, columns = truth + models
    for s in tests:
        key = f"{s.dwell_s * 1000:g} ms"
        cols = ["truth", *preds[key]]
        fig, axes = plt.subplots(len(ELEMENTS), len(cols),
                                 figsize=(1.25 * len(cols), 1.05 * len(ELEMENTS)), squeeze=False)
        for j, el in enumerate(ELEMENTS):
            truth = s.elements[:, j]
            vmax = float(np.percentile(truth, 99.5)) or 1.0
            for c, name in enumerate(cols):
                v = truth if name == "truth" else preds[key][name][:, j]
                ax = axes[j, c]
                ax.imshow(s.image(v), vmin=0, vmax=vmax, cmap="magma", interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_title(name.replace(" (ours)", "\n(ours)"), fontsize=6)
                if c == 0:
                    ax.set_ylabel(el, fontsize=7)
        fig.tight_layout(pad=0.2)
        fname = f"elements_{s.name}_{key.replace(' ', '')}.png"
        fig.savefig(out / fname, dpi=60)
        plt.close(fig)
        text.append(f"\n![element maps {key}]({fname})\n")
    return "\n".join(text)

