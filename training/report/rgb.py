"""Report section 1: spectra -> RGB (train `m1_virgin`, test `m1_child`), every model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training import models, train
from training.catalogue import RGB_TEST, RGB_TRAIN, scene_path
from training.data import Scene, load_scene
from training.loop import predict
from training.metrics import delta_e_rgb, r2_rgb
from training.preprocess import Preprocess
from training.report import (
    CFG,
    KNN_MAX_TRAIN,
    SVR_MAX_TRAIN,
    fmt,
    md_table,
    sk_fn,
    throughput,
    timed,
    torch_fn,
)

ALTERED_MASKS = ("faded", "darkened_varnish", "overpaint")
ALTERED_DE = 5.0  # a pixel is "faded / over-painted" where photo and original differ by this


def altered_mask(scene: Scene) -> np.ndarray:
    """Faded / darkened / over-painted pixels: the scene's masks, else photo != original."""
    masks = [scene.masks[k] for k in ALTERED_MASKS if k in scene.masks]
    if masks:
        return np.logical_or.reduce(masks)
    return delta_e_rgb(scene.photo, scene.original) > ALTERED_DE


def run_rgb(data: Path, out: Path, quick: bool) -> tuple[str, dict]:
    import matplotlib.pyplot as plt

    tr = load_scene(scene_path(data, RGB_TRAIN))
    te = load_scene(scene_path(data, RGB_TEST))
    pre = Preprocess.fit(tr.rates)
    xtr, xte = pre(tr.rates), pre(te.rates)
    ytr = tr.photo
    epochs = 5 if quick else CFG.rgb_epochs
    rng = np.random.default_rng(CFG.seed)
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
        torch.manual_seed(CFG.seed)
        _, fit_s = timed(est.fit, xtr[idx], ytr[idx])
        sps = throughput(sk_fn(est, pre), te.rates)
        evaluate(name, est.predict(xte), fit_s, sps, note)

    # the study's encoder
    enc = models.rgb_encoder(pre)
    _, fit_s = timed(train.train_rgb_net, enc, xtr, ytr, "encoder", epochs)
    evaluate("encoder", predict(enc, te.rates), fit_s, throughput(torch_fn(enc), te.rates))

    # the study's autoencoder, sweep of c
    aes = {}
    for c in CFG.ae_c_sweep:
        torch.manual_seed(CFG.seed)
        (rgb_ae, ae), fit_s = timed(train.train_rgb_autoencoder, pre, xtr, ytr, c, epochs)
        aes[c] = ae
        evaluate(f"autoencoder c={c:g}", predict(rgb_ae, te.rates), fit_s,
                 throughput(torch_fn(rgb_ae), te.rates))

    # ours
    torch.manual_seed(CFG.seed)
    mlp = models.rgb_mlp(pre)
    _, fit_s = timed(train.train_rgb_augmented, mlp, tr.rates, ytr, "rgb mlp", epochs)
    evaluate("mlp + dwell aug (ours)", predict(mlp, te.rates), fit_s,
             throughput(torch_fn(mlp), te.rates))
    lib_cfg = CFG if not quick else replace(CFG, library=replace(CFG.library, stacks=100,
                                                                  pixels=2000))
    torch.manual_seed(CFG.seed)
    (lib_mlp, lib), fit_s = timed(train.train_rgb_library, tr, epochs, lib_cfg)
    evaluate("mlp + pigment library (ours)", predict(lib_mlp, te.rates), fit_s,
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
