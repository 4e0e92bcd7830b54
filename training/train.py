"""Training, top to bottom: scenes -> the models the edge serves -> artifacts.

    python -m training.train default [--data data] [--out artifacts/trained]
                                     [--config FILE.toml] [--key=value ...]
        trains what the edge serves: rgb (best RGB model) and trust (autoencoder
        reconstruction error), from the simulated scenes. The element model is PyMca's
        fast fit compiled from the instrument description plus a residual MLP: it needs
        the compiled fit, so `python -m export.element_bundle train` trains it (`make
        train` runs both); train_element_linmlp stays for the report.
    python -m training.train lab DATASET --cfg CFG [--out artifacts/trained]
                                 [--config FILE.toml] [--key=value ...]
        fits PyMca labels on DATASET with the fit configuration CFG and trains
        the element MLP on them (a lab's own scans, no simulator needed; training.lab).

Configuration is training.config.TrainConfig: plain values, overridden by a TOML file
(--config) and then by --key=value (e.g. --rgb_epochs=10 --library.stacks=200); every run
prints it and stores it in each artifact (info.json and the checkpoint). The loop, seeding
and prediction are training.loop; the scenes and their roles training.catalogue.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from proto.dataset import open_dataset
from proto.elements import ELEMENTS
from training import artifacts, library, models, sim
from training.catalogue import RGB_TEST, RGB_TRAIN, scene_path
from training.config import DEFAULT, ConfigError, TrainConfig, load_config, to_toml
from training.data import Scene, load_heldout, load_scene, novel_mask
from training.element_net import element_info, element_scale, train_element_net  # noqa: F401
from training.jsonutil import jsonable
from training.loop import fit, predict, resample_dwell, setup
from training.metrics import auroc, delta_e_rgb, element_errors, r2_rgb
from training.preprocess import MODEL_GRID, Preprocess

# ---------------------------------------------------------------- RGB


def train_rgb_net(model: models.Model, x: np.ndarray, y: np.ndarray, desc: str,
                  epochs: int | None = None, cfg: TrainConfig = DEFAULT) -> list[float]:
    """x: features (N, D), y: targets 0..1 (N, 3); L2 on RGB."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))

    def batch_loss(idx):
        model.body.train()
        return ((model.raw(xt[idx]) - yt[idx]) ** 2).mean()

    hist = fit(model.body.parameters(), batch_loss, len(x), epochs=epochs or cfg.rgb_epochs,
               batch=cfg.rgb_batch, lr=cfg.rgb_lr, wd=cfg.rgb_wd, desc=desc, seed=cfg.seed)
    model.eval()
    return hist


def train_rgb_augmented(model: models.Model, rates: np.ndarray, y: np.ndarray, desc: str,
                        epochs: int | None = None, cfg: TrainConfig = DEFAULT) -> list[float]:
    """Ours: like train_rgb_net but each batch is Poisson re-counted at a random shorter
    dwell (resample_dwell), so the net learns colour from the lines, not from the noise
    of 2665 particular spectra (+0.05 R² on m1_child in our runs)."""
    xt, yt = torch.from_numpy(rates), torch.from_numpy(y.astype(np.float32))
    gen = torch.Generator().manual_seed(cfg.seed + 3)

    def batch_loss(idx):
        model.body.train()
        x = resample_dwell(xt[idx], gen, cfg.rgb_dwell_aug, cfg.dwell_aug_p)
        return ((model.scaled(x) - yt[idx]) ** 2).mean()

    hist = fit(model.body.parameters(), batch_loss, len(rates),
               epochs=epochs or cfg.rgb_epochs, batch=cfg.rgb_batch, lr=cfg.rgb_lr,
               wd=cfg.rgb_wd, desc=desc, seed=cfg.seed)
    model.eval()
    return hist


def scan_library(scene: Scene, lib: library.LibraryConfig, progress: bool = True
                 ) -> library.Library:
    """The pigment library as `scene`'s own instrument would measure it at its dwell."""
    with open_dataset(scene.path) as ds:
        instrument = sim.Instrument.from_dict(ds.instrument)
    return library.build(instrument, scene.dwell_s, lib, progress)


def rgb_inputs(scene: Scene, lib: library.Library) -> np.ndarray:
    """The spectra the served rgb model trains on: the scan's, then the library's."""
    return np.concatenate([scene.rates, lib.rates]).astype(np.float32)


def library_info(lib: library.Library) -> dict:
    """What an artifact's info says of the library it trained on (export.domain rebuilds the
    library from it and the config, for the in-domain subspace)."""
    return {"spectra": len(lib.rates), "stacks": len(lib.stacks),
            "pigments": list(library.PAINTS)}


def train_rgb_library(scene: Scene, epochs: int | None = None, cfg: TrainConfig = DEFAULT
                      ) -> tuple[models.Model, library.Library]:
    """Ours, what the edge serves: the RGB MLP on the scan's spectra and photograph plus the
    pigment library's spectra and painted colours (cfg.library), dwell-augmented."""
    lib = scan_library(scene, cfg.library)
    x = rgb_inputs(scene, lib)
    y = np.concatenate([scene.photo, lib.rgb]).astype(np.float32)
    model = models.rgb_mlp(Preprocess.fit(x))
    train_rgb_augmented(model, x, y, "rgb mlp + library", epochs, cfg)
    return model, lib


def train_rgb_autoencoder(pre: Preprocess, x: np.ndarray, y: np.ndarray, c: float,
                          epochs: int | None = None, cfg: TrainConfig = DEFAULT
                          ) -> tuple[models.Model, models.AutoEncoder]:
    """The study's autoencoder: loss = L2 reconstruction + c * L2(latent, RGB)."""
    ae = models.AutoEncoder(pre.grid.channels)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))

    def batch_loss(idx):
        ae.train()
        z, rec = ae(xt[idx])
        return ((rec - xt[idx]) ** 2).mean() + c * ((z - yt[idx]) ** 2).mean()

    fit(ae.parameters(), batch_loss, len(x), epochs=epochs or cfg.rgb_epochs,
        batch=cfg.rgb_batch, lr=cfg.rgb_lr, wd=cfg.rgb_wd, desc=f"autoencoder c={c:g}",
        seed=cfg.seed)
    ae.eval()
    rgb = models.Model(pre.module(), models.EncoderOnly(ae), np.ones(3), np.zeros(3))
    return rgb, ae


def rgb_info(train: Scene, metrics: dict, pre: Preprocess | None = None, **extra) -> dict:
    info = {"kind": "rgb", "grid": MODEL_GRID.to_dict(), "outputs": ["R", "G", "B"],
            "units": "sRGB 0..1", "train_data": {"scene": train.name, "path": str(train.path),
                                                 "spectra": len(train.rates)},
            "metrics": metrics, **extra}
    if pre is not None:
        info["preprocess"] = pre.to_dict()
    return info


# ---------------------------------------------------------------- elements
# (the element net's training step, target scale and info: training.element_net)


def rate_scale(rates: np.ndarray) -> float:
    """Typical counts/s per channel (RMS), to bring the linear branch's input near 1."""
    return float(max(np.sqrt(np.mean(np.asarray(rates, np.float64) ** 2)), 1e-6))


def fit_linear(model: models.LinearPlusMlp, rates: np.ndarray, y: np.ndarray,
               ridge: float = DEFAULT.el_ridge) -> None:
    """The linear branch by closed-form ridge regression on counts/s, then frozen: a linear
    least-squares fit learned from the maps (what PyMca's fast linear fit does from line
    shapes), so the MLP trains only on what it leaves (absorption, overlaps, noise floor).
    Measured on m6_ioannis at 10 ms: Hg 0.111 -> 0.089, Fe 0.149 -> 0.091 relative RMSE."""
    x = np.asarray(rates, np.float64) * float(model.inv_rate_scale)
    t = np.asarray(y, np.float64) / model.out_scale.numpy()
    x_mean, t_mean = x.mean(axis=0), t.mean(axis=0)
    xc = x - x_mean
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    w = np.linalg.solve(gram, xc.T @ (t - t_mean))  # (D, E)
    with torch.no_grad():
        model.linear.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
        model.body[-1].bias.add_(torch.from_numpy((t_mean - x_mean @ w).astype(np.float32)))
    model.linear.weight.requires_grad_(False)


def train_element_linmlp(scene: Scene, epochs: int | None = None, cfg: TrainConfig = DEFAULT
                         ) -> models.LinearPlusMlp:
    """Ours, what the edge serves: the closed-form linear branch, then the study's
    one-hidden-layer MLP on what it leaves (statistics from a subsample)."""
    step = max(1, len(scene.rates) // cfg.el_stats_spectra)
    sub = scene.rates[::step]
    net = models.element_linmlp(Preprocess.fit(sub), element_scale(scene.elements),
                                rate_scale(sub), cfg.el_hidden)
    fit_linear(net, sub, scene.elements[::step], cfg.el_ridge)
    train_element_net(net, scene.rates, scene.elements, epochs=epochs or cfg.el_epochs,
                      desc="linear+mlp", cfg=cfg)
    return net


# ---------------------------------------------------------------- trust


def train_trust(pre: Preprocess, rates: np.ndarray, *, epochs: int | None = None,
                augment: bool = False, cfg: TrainConfig = DEFAULT) -> models.TrustScore:
    """Autoencoder (reconstruction only) on training spectra; its error is the trust score."""
    rng = np.random.default_rng(cfg.seed)
    if len(rates) > cfg.trust_subsample:
        rates = rates[rng.choice(len(rates), cfg.trust_subsample, replace=False)]
    torch.manual_seed(cfg.seed)
    ae = models.AutoEncoder(pre.grid.channels)
    score = models.TrustScore(pre.module(), ae)
    xt = torch.from_numpy(rates)
    gen = torch.Generator().manual_seed(cfg.seed + 2)

    def batch_loss(idx):
        ae.train()
        x = resample_dwell(xt[idx], gen, cfg.dwell_aug, cfg.dwell_aug_p) if augment else xt[idx]
        return score(x).mean()

    fit(ae.parameters(), batch_loss, len(rates), epochs=epochs or cfg.trust_epochs,
        batch=cfg.rgb_batch, lr=cfg.rgb_lr, wd=cfg.rgb_wd, desc="trust autoencoder",
        seed=cfg.seed)
    return score.eval()


def train_trust_for_rgb(scene: Scene, lib: library.Library, cfg: TrainConfig = DEFAULT
                        ) -> tuple[models.TrustScore, dict]:
    """The trust model guarding the rgb model trained on `scene` + `lib`: it learns rgb's
    training spectra as familiar (scan-only, it called 16 % of the held-out M1 scene outside
    its domain while rgb called 0.8 %), and its info fields name the library so export's
    in-domain subspace covers it as rgb's does."""
    x = rgb_inputs(scene, lib)
    trust = train_trust(Preprocess.fit(x), x, epochs=cfg.epochs(cfg.trust_epochs), cfg=cfg)
    return trust, {"library": library_info(lib)}


def trust_info(train: Scene, metrics: dict, **extra) -> dict:
    return {"kind": "trust", "grid": MODEL_GRID.to_dict(), "outputs": ["reconstruction_error"],
            "units": "mean squared error of standardised sqrt features (higher = less familiar)",
            "train_data": {"scene": train.name, "path": str(train.path),
                           "spectra": len(train.rates)},
            "metrics": metrics, **extra}


# ---------------------------------------------------------------- held-out metrics


def rgb_metrics(model: models.Model, test: Scene) -> dict:
    pred = np.clip(predict(model, test.rates), 0, 1)
    return {"test_scene": test.name, "r2": r2_rgb(test.photo, pred),
            "delta_e_median": float(np.median(delta_e_rgb(test.photo, pred)))}


def element_metrics(model: models.Model, test: Scene) -> dict:
    pred = predict(model, test.rates)
    return {"test_scene": test.name,
            **{e: element_errors(test.elements[:, j], pred[:, j])
               for j, e in enumerate(ELEMENTS)}}


def trust_metrics(model: models.TrustScore, train: Scene, test: Scene) -> dict:
    mask = novel_mask(train, test)
    if mask is None:
        return {}
    return {"test_scene": test.name, "novel_auroc": auroc(mask, predict(model, test.rates))}


# ---------------------------------------------------------------- commands


def train_default(data: str | Path, out: str | Path, epochs_scale: float | None = None,
                  rgb_library: library.LibraryConfig | None = None,
                  cfg: TrainConfig = DEFAULT) -> dict[str, Path]:
    """The rgb and trust models the edge serves, saved under `out` (the elements one:
    export.element_bundle). `epochs_scale` and `rgb_library` (tests) override the same
    fields of `cfg`."""
    if epochs_scale is not None:
        cfg = replace(cfg, epochs_scale=epochs_scale)
    if rgb_library is not None:
        cfg = replace(cfg, library=rgb_library)
    print(f"# training config\n{to_toml(cfg)}", flush=True)
    setup(cfg.seed, cfg.threads)
    config = jsonable(cfg)
    saved = {}
    t0 = time.perf_counter()
    rgb_train = load_scene(scene_path(data, RGB_TRAIN))
    rgb, lib = train_rgb_library(rgb_train, cfg.epochs(cfg.rgb_epochs), cfg)
    rgb_test = load_heldout(data, RGB_TEST)
    metrics = {"train_r2": r2_rgb(rgb_train.photo, predict(rgb, rgb_train.rates)),
               **({"test": rgb_metrics(rgb, rgb_test)} if rgb_test else {})}
    saved["rgb"] = artifacts.save("rgb", rgb, rgb_info(
        rgb_train, metrics, model="rgb_mlp, dwell-augmented, pigment library",
        library=library_info(lib), config=config), out)

    trust, trust_extra = train_trust_for_rgb(rgb_train, lib, cfg)
    metrics = {"test": trust_metrics(trust, rgb_train, rgb_test)} if rgb_test else {}
    saved["trust"] = artifacts.save("trust", trust, trust_info(
        rgb_train, metrics, **trust_extra, config=config), out)
    print(f"trained {sorted(saved)} in {time.perf_counter() - t0:.0f} s -> {out}")
    return saved


def main(argv: list[str] | None = None) -> None:
    # no abbreviations: --key=value overrides must never be taken for a prefix of a flag
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("default", help="train the rgb and trust models the edge needs",
                       epilog="Any further --key=value overrides that TrainConfig field.",
                       allow_abbrev=False)
    d.add_argument("--data", default="data", help="folder with the scene files (make data)")
    d.add_argument("--epochs-scale", type=float, default=None,
                   help="multiply every epoch count (shorter runs); same as --epochs_scale=S")
    lab = sub.add_parser("lab", help="train the element MLP on a dataset with PyMca labels",
                         epilog="Any further --key=value overrides that TrainConfig field.",
                         allow_abbrev=False)
    lab.add_argument("dataset", help="dataset file (make convert) to label and train on")
    lab.add_argument("--cfg", required=True, help="PyMca fit configuration (.cfg)")
    lab.add_argument("--name", default="elements_lab", help="artifact name under --out")
    lab.add_argument("--epochs", type=int, default=None,
                     help="training epochs (default: the config's el_epochs)")
    for p in (d, lab):
        p.add_argument("--out", default=str(artifacts.DEFAULT_ROOT),
                       help="folder the trained models are written under")
        p.add_argument("--config", default=None, metavar="FILE.toml",
                       help="TOML file of TrainConfig values (applied before --key=value)")
    a, rest = ap.parse_known_args(argv)
    try:
        cfg = load_config(a.config, rest)
    except ConfigError as e:
        raise SystemExit(f"python -m training.train {a.command}: {e}") from None
    if a.command == "default":
        train_default(a.data, a.out, a.epochs_scale, cfg=cfg)
    else:
        from training.lab import train_lab

        train_lab(a.dataset, a.cfg, a.out, a.name, a.epochs, cfg)


if __name__ == "__main__":
    main()
