"""Trained models -> ONNX bundles for the edge.

    python -m export default --trained artifacts/trained --out models [--data data]
        the three bundles the edge serves: models/rgb, models/elements, models/trust
        (from the trained models of the same names), each with its parity figure; an
        elements artifact of the compiled fast fit + residual (export.element_bundle) is
        rebuilt from its instrument description.
    python -m export model NAME [NAME ...] | --all  [--trained ...] [--out models/baselines]
        any trained model (baselines: Lasso, kNN, SVR, CNN ...) to <out>/NAME; the
        default out keeps them one level below models/, where the daemon (which
        loads models/*/) does not pick them up by accident.

Exits non-zero, with the worst case printed, when ONNX Runtime and the
framework disagree beyond tolerance on held-out spectra (export.parity).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from export.parity import ParityError
from proto.bundle import KINDS

DEFAULT = KINDS  # `make train` names each served model after its kind


def export_named(names, trained: str | Path, out: str | Path, data: str | Path,
                 n: int = 1024) -> int:
    import torch

    from export import element_bundle  # registers its residual model class for loading
    from export.bundles import export_model
    from export.heldout import heldout
    from proto.energy import EnergyGrid
    from training import artifacts

    torch.set_num_threads(2)
    failed = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            model, info = artifacts.load(name, trained)
            if info.get("model") == element_bundle.MODEL:  # fast fit + residual
                bundle, p = element_bundle.export_elements(model, info, Path(out) / name, data)
            else:
                x, source = heldout(info, EnergyGrid.from_dict(info["grid"]), data, n)
                bundle, p = export_model(model, info, Path(out) / name, x, source, name, data)
        except (ParityError, ValueError, FileNotFoundError) as e:
            print(f"{name}: export FAILED: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        size = bundle.model_path.stat().st_size / 2**20
        print(f"{name}: {bundle.folder} ({bundle.manifest.kind}, {size:.2f} MiB, "
              f"{time.perf_counter() - t0:.1f} s) {p.line()}", flush=True)
        print(f"{name}: {describe_domain(bundle.manifest)}", flush=True)
    return failed


def describe_domain(m) -> str:
    """One line: the instruments and training domain a manifest states."""
    names = ", ".join(i.label for i in m.identities) or "no instrument stated"
    d = m.training_domain
    parts = [f"trained for {names}"]
    if d.energy_kev:
        parts.append(f"signal {d.energy_kev[0]:.2f}-{d.energy_kev[1]:.2f} keV")
    if d.subspace:
        parts.append(f"in-domain subspace k={d.subspace['components']}, "
                     f"threshold {d.subspace['threshold']:.3g}")
    if d.score_threshold is not None:
        parts.append(f"unfamiliar above {d.score_threshold:.3g}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("default", help="export rgb, elements and trust")
    m = sub.add_parser("model", help="export named trained models")
    m.add_argument("names", nargs="*", help="trained model names (folders under --trained)")
    m.add_argument("--all", action="store_true", help="every model under --trained")
    for p, out in ((d, "models"), (m, "models/baselines")):
        p.add_argument("--trained", default="artifacts/trained",
                       help="folder of trained models (make train)")
        p.add_argument("--out", default=out, help=f"folder the bundles go under (default {out})")
        p.add_argument("--data", default="data", help="folder with the held-out scene files")
        p.add_argument("--spectra", type=int, default=1024, help="held-out pixels for parity")
    a = ap.parse_args(argv)
    names = DEFAULT if a.command == "default" else a.names
    if a.command == "model" and a.all:
        from training.artifacts import available

        names = available(a.trained)
    if not names:
        ap.error("no models to export (name some, or --all with trained models present)")
    return 1 if export_named(names, a.trained, a.out, a.data, a.spectra) else 0


if __name__ == "__main__":
    sys.exit(main())
