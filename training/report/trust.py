"""Report section 3: the trust score (autoencoder reconstruction error), AUROC at flagging
pigments absent from training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training import models, train
from training.catalogue import TRUST_TRAIN
from training.data import novel_mask
from training.loop import predict
from training.metrics import auroc
from training.report import CFG, fmt, md_table, timed


def run_trust(rgb: dict, out: Path, quick: bool) -> str:
    """AUROC of reconstruction-error scores at flagging pigments absent from training."""
    import matplotlib.pyplot as plt

    ep = 3 if quick else CFG.trust_epochs
    cases = []  # (label, scorer, train scene, test scenes)
    m1, fit_m1 = timed(train.train_trust, rgb["pre"], rgb["train"].rates, epochs=ep)
    cases.append((f"trust AE on {rgb['train'].name} ({fit_m1:.0f} s)", m1, rgb["train"],
                  [rgb["test"]]))
    c = CFG.ae_c_default  # one of CFG.ae_c_sweep, which section 1 trained
    ts = models.TrustScore(rgb["pre"].module(), rgb["ae_models"][c]).eval()
    cases.append((f"study's RGB autoencoder c={c:g}", ts, rgb["train"], [rgb["test"]]))
    text = ["## 3. Trust score (autoencoder reconstruction error)\n",
            "Autoencoder of the study's shape (5 down + 5 up Linear+ReLU, 3-d bottleneck), "
            "reconstruction loss only, trained on the scan named; score = mean squared "
            "reconstruction error of the preprocessed spectrum. AUROC = how well the score "
            "ranks pixels of the test scene's `novel` mask (a pigment absent from training) "
            "above the rest (0.5 = chance). The default edge model (`make train`) is the first "
            f"row's trained on `{TRUST_TRAIN}` plus the rgb model's pigment library (smalt "
            "included, so its novel-pigment AUROC is lower: see the trust bundle's manifest), "
            "the inputs of the model it guards.\n"]
    rows, panels = [], []
    for label, scorer, trs, tests in cases:
        for s in tests:
            mask = novel_mask(trs, s)
            sc = predict(scorer, s.rates)[:, 0]
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
