"""`python -m training.report --data data --out reports`: every model, every table, every figure.

Reproduces the study's two experiments on the simulated scenes and writes
reports/REPORT.md with small PNG figures:

1. spectra -> RGB: train on m1_virgin (targets: its photograph), test on
   m1_child: Lasso, kNN (k = 10), SVR, the encoder, the study's autoencoder
   over a sweep of c, and our MLP; R², CIEDE2000, and CIEDE2000 to the original
   colour in faded / over-painted regions.
2. spectra -> element maps: train on m6_corpus, test on m6_ioannis at 10 ms
   and 100 ms dwell: the study's MLP, our linear+MLP, a 1-D CNN, ROI sums and
   PyMca fast fit; relative RMSE and Pearson r per element.
3. trust: autoencoder reconstruction error; AUROC at flagging novel pigments.

Everything runs on 2 cores in well under 30 minutes; `--quick` shortens
training for smoke tests.
"""

from __future__ import annotations

import argparse
import glob
import time
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import torch

from proto.elements import ELEMENTS
from training import models, train
from training.metrics import auroc, delta_e_rgb, element_errors, r2_rgb
from training.preprocess import Preprocess
from training.roi import RoiModel

matplotlib.use("Agg")  # before pyplot is imported (in the functions that draw)

SVR_MAX_TRAIN = 4000  # SVR is O(N^2): subsample beyond this (said in the report)
KNN_MAX_TRAIN = 20000
ALTERED_DE = 5.0  # a pixel is "faded / over-painted" where photo and original differ by this


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def throughput(fn, x: np.ndarray, n: int = 8192) -> float:
    """Spectra/s of fn on up to n spectra (counts/s in, predictions out)."""
    x = x[:n]
    fn(x[:64])  # warm up
    t = time.perf_counter()
    fn(x)
    return len(x) / max(time.perf_counter() - t, 1e-9)


def torch_fn(model):
    return lambda r: train.predict(model, r)


def sk_fn(model, pre: Preprocess):
    return lambda r: model.predict(pre(r))


def fmt(v, d=3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def scene_files(data: Path, name: str) -> list[Path]:
    """<name>.h5 and its dwell variants (<name>_*ms.h5 ...), tiny files only if nothing else."""
    full = sorted(p for p in map(Path, glob.glob(str(data / f"{name}*.h5")))
                  if "tiny" not in p.name and "corpus" not in p.name[len(name):])
    if not full:
        full = sorted(map(Path, glob.glob(str(data / f"{name}*tiny*.h5"))))
    return full


# ------------------------------------------------------------------ RGB


def altered_mask(scene: train.Scene) -> np.ndarray:
    """Faded / darkened / over-painted pixels: the scene's masks, else photo != original."""
    masks = [scene.masks[k] for k in train.ALTERED_MASKS if k in scene.masks]
    if masks:
        return np.logical_or.reduce(masks)
    return delta_e_rgb(scene.photo, scene.original) > ALTERED_DE


def run_rgb(data: Path, out: Path, quick: bool) -> tuple[str, dict]:
    import matplotlib.pyplot as plt

    tr = train.load_scene(train.scene_path(data, train.RGB_TRAIN))
    te = train.load_scene(train.scene_path(data, train.RGB_TEST))
    pre = Preprocess.fit(tr.rates)
    xtr, xte = pre(tr.rates), pre(te.rates)
    ytr = tr.photo
    epochs = 5 if quick else train.RGB_EPOCHS
    rng = np.random.default_rng(train.SEED)
    results: dict[str, dict] = {}

    def evaluate(name, pred, fit_s, sps, note=""):
        pred = np.clip(pred, 0, 1)
        de = delta_e_rgb(te.photo, pred)
        known = ~te.masks.get("novel", np.zeros(len(pred), bool))
        r = {"pred": pred, "r2": r2_rgb(te.photo, pred), "de_med": float(np.median(de)),
             "r2_known": r2_rgb(te.photo[known], pred[known]),
             "de_med_known": float(np.median(de[known])),
             "de_p95": float(np.percentile(de, 95)), "fit_s": fit_s, "sps": sps, "note": note}
        if te.original is not None:
            altered = altered_mask(te)
            r["altered_frac"] = float(altered.mean())
            if altered.any():
                r["alt_orig"] = float(np.median(delta_e_rgb(te.original[altered], pred[altered])))
                r["alt_photo"] = float(np.median(delta_e_rgb(te.photo[altered], pred[altered])))
        results[name] = r
        print(f"  rgb {name}: R2={r['r2']:.3f} dE={r['de_med']:.2f} ({fit_s:.1f} s)", flush=True)

    # baselines (scikit-learn, on the preprocessed features)
    for name, est, cap in (("lasso", models.lasso(), None), ("knn10", models.knn(), KNN_MAX_TRAIN),
                           ("svr", models.svr(), SVR_MAX_TRAIN)):
        idx = np.arange(len(xtr))
        note = ""
        if cap and len(idx) > cap:
            idx = np.sort(rng.choice(len(idx), cap, replace=False))
            note = f"trained on a random {cap} of {len(xtr)} spectra"
        torch.manual_seed(train.SEED)
        _, fit_s = timed(est.fit, xtr[idx], ytr[idx])
        sps = throughput(sk_fn(est, pre), te.rates)
        evaluate(name, est.predict(xte), fit_s, sps, note)

    # the study's encoder
    enc = models.rgb_encoder(pre)
    _, fit_s = timed(train.train_rgb_net, enc, xtr, ytr, "encoder", epochs)
    evaluate("encoder", train.predict(enc, te.rates), fit_s, throughput(torch_fn(enc), te.rates))

    # the study's autoencoder, sweep of c
    aes = {}
    for c in train.AE_C_SWEEP:
        torch.manual_seed(train.SEED)
        (rgb_ae, ae), fit_s = timed(train.train_rgb_autoencoder, pre, xtr, ytr, c, epochs)
        aes[c] = ae
        evaluate(f"autoencoder c={c:g}", train.predict(rgb_ae, te.rates), fit_s,
                 throughput(torch_fn(rgb_ae), te.rates))

    # ours
    torch.manual_seed(train.SEED)
    mlp = models.rgb_mlp(pre)
    _, fit_s = timed(train.train_rgb_augmented, mlp, tr.rates, ytr, "rgb mlp", epochs)
    evaluate("mlp + dwell aug (ours)", train.predict(mlp, te.rates), fit_s,
             throughput(torch_fn(mlp), te.rates))
    lib_cfg = train.RGB_LIBRARY if not quick else replace(train.RGB_LIBRARY, stacks=100,
                                                           pixels=2000)
    torch.manual_seed(train.SEED)
    (lib_mlp, lib), fit_s = timed(train.train_rgb_library, tr, lib_cfg, epochs)
    evaluate("mlp + pigment library (ours)", train.predict(lib_mlp, te.rates), fit_s,
             throughput(torch_fn(lib_mlp), te.rates),
             f"+ {len(lib.rates)} simulated spectra of {len(lib.stacks)} reference stacks "
             "(fit s includes simulating them)")

    # table
    rows = []
    for name, r in results.items():
        rows.append([name, fmt(r["r2"]), fmt(r["de_med"], 2), fmt(r["de_p95"], 2),
                     fmt(r["r2_known"]), fmt(r["de_med_known"], 2),
                     fmt(r.get("alt_orig"), 2), fmt(r.get("alt_photo"), 2),
                     fmt(r["fit_s"], 1), f"{r['sps']:,.0f}", r["note"]])
    knn_r2 = results["knn10"]["r2"]
    oracle_r2 = r2_rgb(te.photo, te.original) if te.original is not None else float("nan")
    best = max(results, key=lambda k: results[k]["r2"])
    b = results[best]
    frac = b.get("altered_frac")
    faded = te.masks.get("faded", np.zeros(len(te.photo), bool))
    faded_de = (float(np.median(delta_e_rgb(te.original[faded], b["pred"][faded])))
                if te.original is not None and faded.any() else float("nan"))
    text = [
        "## 1. Spectra -> RGB (train `m1_virgin`, test `m1_child`)\n",
        f"Train: {len(tr.rates)} spectra ({tr.shape[0]}x{tr.shape[1]}, dwell {tr.dwell_s:g} s), "
        f"targets = photograph RGB. Test: {len(te.rates)} spectra ({te.shape[0]}x{te.shape[1]}). "
        "R² = scikit-learn `r2_score`, uniform average over R, G, B (the study's score). "
        "ΔE = CIEDE2000 to the photograph. *Altered* = pixels in the scene's faded, "
        "darkened-varnish and over-paint masks (else photograph vs original ΔE > "
        f"{ALTERED_DE:g}; "
        f"{fmt(frac * 100 if frac is not None else None, 1)} % of the test area): median ΔE of "
        "the prediction to the original colour vs to the photograph. Spectra/s: one process, "
        "2 threads, preprocessing included. *w/o novel*: the same metrics without the "
        "pixels of the scene's `novel` mask (a pigment absent from `m1_virgin`, which no "
        "model trained on that scan alone can know; section 3 flags them). "
        "*Pigment library*: the scan plus simulated reference paints of the whole icon "
        "palette (training/library.py: random recipes, underpaint, lake glazes and gilding, "
        "seen through `m1_virgin`'s instrument and dwell, targets = colour as painted). It "
        "knows the novel pigment's colour from the library, and since the library's colours "
        "come from the same pigment table and Kubelka-Munk model as the simulated scenes, its "
        "score here is an upper bound of what a measured library would give on a real icon.\n",
        md_table(["model", "R²", "ΔE median", "ΔE p95", "R² w/o novel", "ΔE med w/o novel",
                  "altered: ΔE to original",
                  "altered: ΔE to photo", "fit s", "spectra/s", "note"], rows),
        "",
        f"- Reproduced kNN (k = 10, Euclidean) R² = **{knn_r2:.3f}** (study: 0.45). "
        f"Best: **{best}** R² = **{b['r2']:.3f}** "
        f"({'+' if b['r2'] >= knn_r2 else ''}{b['r2'] - knn_r2:.3f} over kNN; "
        f"goal +0.1: {'met' if b['r2'] - knn_r2 >= 0.1 else 'not met'}).",
        f"- Goals: R² >= 0.9 {'met' if b['r2'] >= 0.9 else 'not met'}; median ΔE <= 3 "
        f"{'met' if b['de_med'] <= 3 else 'not met'} ({b['de_med']:.2f}); faded regions "
        f"within ΔE 5 of the original {'met' if faded_de <= 5 else 'not met'} "
        f"({faded_de:.2f}; all altered regions {fmt(b.get('alt_orig'), 2)}).",
        f"- Why R² >= 0.9 is out of reach on this scene: the score is against the photograph, "
        f"and a model that predicted every pixel's *original* colour exactly (what unveiling "
        f"asks for) would score R² = {oracle_r2:.3f}; the altered regions' photograph colour "
        "(faded lake, browned varnish) has no XRF signature to learn it from. The same "
        "regions and the novel pigment hold the median ΔE up; the faded regions' own miss "
        "is the lake glaze, whose alum/chalk substrate is all XRF sees of it, so whether "
        "vermilion lies under a glaze is barely in the spectrum.",
        "- Autoencoder question (does reconstruction help the RGB latent?): compare the "
        "`encoder` row with the `autoencoder c=...` rows; large c is the encoder plus a "
        "reconstruction regulariser.",
    ]
    # figure: photo, original, predictions
    panels = [("photograph", te.photo), ("original", te.original)]
    panels += [(k, r["pred"]) for k, r in results.items()]
    panels = [(k, v) for k, v in panels if v is not None]
    cols = 5
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(2.2 * cols, 2.4 * rows_n), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (k, v) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(te.image(np.clip(v, 0, 1)), interpolation="nearest")
        title = k if k in ("photograph", "original") else f"{k}\nR² {results[k]['r2']:.2f}"
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rgb_m1_child.png", dpi=70)
    plt.close(fig)
    text.append("\n![photograph vs original vs predicted, m1_child](rgb_m1_child.png)\n")
    summary = {"knn_r2": knn_r2, "best": best, "best_r2": b["r2"], "best_de_med": b["de_med"],
               "ae_models": aes, "pre": pre, "train": tr, "test": te}
    return "\n".join(text), summary


# ------------------------------------------------------------------ elements


def pymca_maps(path: Path) -> tuple[np.ndarray | None, str]:
    """PyMca fast-fit maps (N, 8) counts/s for a test file via training.labels, or a reason."""
    try:
        from training import labels
    except ImportError as e:
        return None, f"training.labels unavailable ({e})"
    cfg = getattr(labels, "DEFAULT_CFG", None)
    if cfg is None:
        cands = sorted(glob.glob(str(Path(__file__).parent / "configs" / "*.cfg")))
        m6 = [c for c in cands if "m6" in Path(c).name.lower()]
        cfg = (m6 or cands or [None])[0]
    if cfg is None:
        return None, "no PyMca configuration in training/configs"
    t = time.perf_counter()
    maps = labels.fit_labels(path, cfg)
    secs = time.perf_counter() - t
    if not isinstance(maps, dict) or not maps:
        scene = train.load_scene(path)
        if scene.labels is None:
            return None, "fit_labels returned no maps"
        maps = {e: scene.labels[:, j] for j, e in enumerate(scene.label_names)}
    first = next(iter(maps.values()))
    n = int(np.size(first))
    y = np.stack([np.asarray(maps.get(e, np.full(n, np.nan)), np.float32).reshape(-1)
                  for e in ELEMENTS], axis=1)
    return y, f"{secs:.1f} s ({n / secs:,.0f} spectra/s) with {Path(cfg).name}"


def run_elements(data: Path, out: Path, quick: bool) -> str:
    import matplotlib.pyplot as plt

    tr = train.load_scene(train.scene_path(data, train.EL_TRAIN))
    tests = [train.load_scene(p) for p in scene_files(data, train.EL_TEST)]
    if not tests:
        raise FileNotFoundError(f"no {train.EL_TEST}*.h5 in {data}")
    tests.sort(key=lambda s: s.dwell_s)
    step = max(1, len(tr.rates) // 50_000)
    sub = tr.rates[::step]
    pre = Preprocess.fit(sub)
    scale = train.element_scale(tr.elements)
    ep = 1 if quick else train.EL_EPOCHS
    rng = np.random.default_rng(train.SEED)
    nets, fit_times = {}, {}

    torch.manual_seed(train.SEED)
    mlp = models.element_mlp(pre, scale, train.EL_HIDDEN)
    _, fit_times["mlp (study)"] = timed(train.train_element_net, mlp, tr.rates, tr.elements,
                                        epochs=ep, desc="element mlp")
    nets["mlp (study)"] = mlp
    torch.manual_seed(train.SEED)
    nets["linear+mlp (ours)"], fit_times["linear+mlp (ours)"] = timed(
        train.train_element_linmlp, tr, ep)
    torch.manual_seed(train.SEED)
    cnn = models.element_cnn(pre, scale)
    idx = rng.choice(len(tr.rates), min(len(tr.rates), train.CNN_SUBSAMPLE), replace=False)
    _, fit_times["cnn 1-D"] = timed(train.train_element_net, cnn, tr.rates[idx],
                                    tr.elements[idx], epochs=1 if quick else train.CNN_EPOCHS,
                                    desc="element cnn")
    nets["cnn 1-D"] = cnn
    roi, fit_times["roi sums"] = timed(RoiModel().fit, sub, tr.elements[::step])

    preds: dict[str, dict[str, np.ndarray]] = {}
    sps: dict[str, float] = {}
    pymca_notes = []
    for s in tests:
        key = f"{s.dwell_s * 1000:g} ms"
        preds[key] = {k: train.predict(m, s.rates) for k, m in nets.items()}
        preds[key]["roi sums"] = roi.predict(s.rates)
        py, note = pymca_maps(s.path)
        pymca_notes.append(f"{key}: {note}")
        if py is not None:
            preds[key]["pymca fast fit"] = py
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
        f"a random {min(len(tr.rates), train.CNN_SUBSAMPLE)} spectra for "
        f"{1 if quick else train.CNN_EPOCHS} epochs (it costs ~25x the MLP per spectrum). "
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

    if "pymca fast fit" in preds[key0]:
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


# ------------------------------------------------------------------ trust


def run_trust(rgb: dict, out: Path, quick: bool) -> str:
    """AUROC of reconstruction-error scores at flagging pigments absent from training."""
    import matplotlib.pyplot as plt

    ep = 3 if quick else train.TRUST_EPOCHS
    cases = []  # (label, scorer, train scene, test scenes)
    m1, fit_m1 = timed(train.train_trust, rgb["pre"], rgb["train"].rates, epochs=ep)
    cases.append((f"trust AE on {rgb['train'].name} ({fit_m1:.0f} s)", m1, rgb["train"],
                  [rgb["test"]]))
    if rgb.get("ae_models"):
        c = train.AE_C_DEFAULT if train.AE_C_DEFAULT in rgb["ae_models"] else \
            next(iter(rgb["ae_models"]))
        ts = models.TrustScore(rgb["pre"].module(), rgb["ae_models"][c]).eval()
        cases.append((f"study's RGB autoencoder c={c:g}", ts, rgb["train"], [rgb["test"]]))
    text = ["## 3. Trust score (autoencoder reconstruction error)\n",
            "Autoencoder of the study's shape (5 down + 5 up Linear+ReLU, 3-d bottleneck), "
            "reconstruction loss only, trained on the scan named; score = mean squared "
            "reconstruction error of the preprocessed spectrum. AUROC = how well the score "
            "ranks pixels of the test scene's `novel` mask (a pigment absent from training) "
            "above the rest (0.5 = chance). The default edge model (`make train`) is the first "
            f"row's (trained on `{train.TRUST_TRAIN}`).\n"]
    rows, panels = [], []
    for label, scorer, trs, tests in cases:
        for s in tests:
            mask = train.novel_mask(trs, s)
            sc = train.predict(scorer, s.rates)[:, 0]
            a = auroc(mask, sc) if mask is not None else None
            rows.append([label, s.name, fmt(mask.mean() * 100 if mask is not None else None, 1),
                         fmt(a)])
            if len(panels) < 4:
                panels.append((f"{s.name}\n{label.split(' (')[0]}", s, sc, mask))
    text.append(md_table(["scorer", "test scene", "novel %", "AUROC"], rows))
    fig, axes = plt.subplots(2, len(panels), figsize=(2.6 * len(panels), 4.6), squeeze=False)
    for c, (title, s, sc, mask) in enumerate(panels):
        axes[0, c].imshow(s.image(sc), vmin=0, vmax=float(np.percentile(sc, 99)), cmap="viridis")
        axes[0, c].set_title(title, fontsize=6)
        axes[1, c].imshow(s.image(mask if mask is not None else np.zeros(len(sc))), cmap="gray")
        axes[1, c].set_title("novel pigment mask (truth)", fontsize=6)
        for ax in axes[:, c]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "trust.png", dpi=60)
    plt.close(fig)
    text.append("\n![trust maps](trust.png)\n")
    return "\n".join(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="reports")
    ap.add_argument("--quick", action="store_true", help="short training (smoke test)")
    a = ap.parse_args(argv)
    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train.setup()
    t0 = time.perf_counter()
    rgb_text, rgb = run_rgb(data, out, a.quick)
    t_rgb = time.perf_counter() - t0
    el_text = run_elements(data, out, a.quick)
    t_el = time.perf_counter() - t0 - t_rgb
    trust_text = run_trust(rgb, out, a.quick)
    total = time.perf_counter() - t0
    head = [
        "# Training and evaluation report\n",
        "Generated by `make report` (`python -m training.report --data data --out reports`)"
        f"{' with --quick' if a.quick else ''}; seeds fixed, torch on 2 threads. "
        f"Wall time {total / 60:.1f} min (RGB {t_rgb:.0f} s, elements {t_el:.0f} s, "
        f"trust {total - t_rgb - t_el:.0f} s).\n",
        "Preprocessing for every model (training/preprocess.py): counts per live second "
        "rebinned onto 0.01 + 0.02 i keV (1024 channels), square root, centred per channel, "
        "divided by one global scale fitted on the training scan.\n",
    ]
    (out / "REPORT.md").write_text("\n".join([*head, rgb_text, "", el_text, "", trust_text, ""]))
    print(f"wrote {out / 'REPORT.md'} in {total / 60:.1f} min")


if __name__ == "__main__":
    main()
