"""How much of a scan lies outside each model's training domain (issue 12 item 5).

    python -m training.domain_report [--models models] [--data data] [--real ../shared/data]
                                     [--work out/domain] [--out reports/DOMAIN.md]

For every bundle in --models that declares an in-domain subspace (`make export`), and every
scan below, the share of pixels the edge would mark outside the model's training domain
(proto.domain: the same `Subspace.outside` the daemon runs on each live pixel), the share the
trust map calls unfamiliar (score above its calibrated threshold, through ONNX Runtime), and
whether the scan's instrument is one the model was trained for (else the daemon refuses it
unless started with --allow-foreign). Scans: the held-out simulated scenes in --data, and
the real files in --real converted with `training.convert` (IXRF ATLAS and APS 2-ID-E with
their descriptions, the Bruker EDS map without one, the real M6 spectrum), the APS scan and
the EDS map zero-padded to 4096 channels as they would have to be streamed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proto.bundle import Bundle, BundleError, load_bundle
from proto.dataset import open_dataset, write_dataset
from proto.energy import EnergyGrid, Rebinner
from proto.identity import parse_identity, stream_instrument

HELD_OUT = ("m6_ioannis", "m6_ioannis_100ms", "m1_child")
INSTRUMENTS = Path(__file__).resolve().parent / "instruments"
# (name, file under --real, instrument TOML or None, zero-pad to this many channels or None)
REAL = (
    ("IXRF ATLAS (real)", "ixrf_atlas/ts2_01_sub_export.GeoPIXE", "ixrf_atlas", None),
    ("APS 2-ID-E (real, padded)", "aps_2ide/2xfm_0011_2xfm3__0.h5", "aps_2ide", 4096),
    ("EDS map (real .bcf, padded)", "bruker_eds_30x30_example.bcf", None, 4096),
    ("M6 spectrum (real .spx)", "bruker_m6_jetstream_example.spx", "m6_jetstream", None),
)


@dataclass
class Row:
    scan: str
    fingerprint: str | None
    pixels: int
    outside: dict[str, float]  # kind -> share outside the training domain
    unfamiliar: float | None  # trust score above its threshold
    foreign: dict[str, bool]  # kind -> instrument not one the model was trained for
    # simulated scenes: kind -> share outside among pixels in none of the scene's regions
    # unlike its training scan (faded, over-painted, novel pigment ...), and their share
    plain: dict[str, float] | None = None
    unlike: float = 0.0


def bundles(models: Path) -> dict[str, Bundle]:
    out = {}
    for kind in ("rgb", "elements", "trust"):
        try:
            out[kind] = load_bundle(models / kind)
        except BundleError as e:
            print(f"skipped {kind}: {e}")
    return out


def trust_scores(bundle: Bundle, rates: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(bundle.model_bytes, so, providers=["CPUExecutionProvider"])
    m = bundle.manifest
    return np.concatenate([s.run([m.output_name], {m.input_name: rates[i:i + 4096]})[0]
                           for i in range(0, len(rates), 4096)])[:, 0]


def measure(name: str, path: Path, models: dict[str, Bundle]) -> Row:
    with open_dataset(path) as ds:
        counts = np.asarray(ds.counts).reshape(-1, ds.shape[2])
        live = np.asarray(ds.live_time_s, np.float64).reshape(-1)
        grid = ds.grid
        ident = parse_identity(stream_instrument(ds.instrument))
        masks = [m.reshape(-1) for m in ds.masks.values()]
    ok = live > 0
    counts, live = counts[ok], live[ok]
    unlike = np.logical_or.reduce(masks)[ok] if masks else None
    outside, foreign, unfamiliar, plain = {}, {}, None, {}
    for kind, b in models.items():
        rates = Rebinner(grid, b.manifest.grid)(counts) / live[:, None].astype(np.float32)
        trained = {t.fingerprint for t in b.manifest.identities}
        foreign[kind] = bool(trained) and (ident is None or ident.fingerprint not in trained)
        if b.subspace is not None:
            out = b.subspace.outside(rates, live)
            outside[kind] = float(out.mean())
            if unlike is not None:
                plain[kind] = float(out[~unlike].mean())
        thr = b.manifest.training_domain.score_threshold
        if kind == "trust" and thr is not None:
            unfamiliar = float((trust_scores(b, rates) > thr).mean())
    return Row(name, ident.name if ident else None, int(ok.sum()), outside, unfamiliar, foreign,
               plain if unlike is not None else None,
               float(unlike.mean()) if unlike is not None else 0.0)


def pad(src: Path, dst: Path, channels: int) -> Path:
    """Zero channels appended up to `channels` (what makes a short spectrum look servable)."""
    with open_dataset(src) as ds:
        counts, g = np.asarray(ds.counts), ds.grid
        live, real = np.asarray(ds.live_time_s), np.asarray(ds.real_time_s)
        inst, scan = dict(ds.instrument or {}), dict(ds.scan or {})
    out = np.zeros((*counts.shape[:2], channels), counts.dtype)
    out[..., :counts.shape[2]] = counts
    return write_dataset(dst, out, EnergyGrid(g.offset, g.gain, channels), live, real,
                         instrument=inst, scan=scan | {"zero_padded_from": int(counts.shape[2])})


def real_scans(real: Path, work: Path) -> list[tuple[str, Path]]:
    from training.convert import convert

    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name, rel, toml, channels in REAL:
        src = real / rel
        if not src.is_file():
            print(f"skipped {name}: no {src}")
            continue
        stem = Path(rel).stem
        path = convert(src, work / f"{stem}.h5",
                       instrument=INSTRUMENTS / f"{toml}.toml" if toml else None)
        if channels:
            path = pad(path, work / f"{stem}_padded.h5", channels)
        out.append((name, path))
    return out


def table(rows: list[Row], kinds: list[str]) -> str:
    head = ["scan", "instrument", "pixels", *[f"{k} outside" for k in kinds], "unfamiliar"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.scan, r.fingerprint or "unknown", str(r.pixels)]
        for k in kinds:
            v = r.outside.get(k)
            flag = " (foreign)" if r.foreign.get(k) else ""
            cells.append("-" if v is None else f"{100 * v:.1f} %{flag}")
        cells.append("-" if r.unfamiliar is None else f"{100 * r.unfamiliar:.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r.scan}: {100 * r.unlike:.1f} % of its pixels are in regions unlike its "
             "training scan (faded, over-painted, novel pigment ...); outside them: "
             + ", ".join(f"{k} {100 * v:.1f} %" for k, v in r.plain.items())
             for r in rows if r.plain]
    return "\n".join(lines + (["", *notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.domain_report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("models"), help="bundles (make export)")
    ap.add_argument("--data", type=Path, default=Path("data"), help="simulated scenes")
    ap.add_argument("--real", type=Path, default=Path("../shared/data"), help="real files")
    ap.add_argument("--work", type=Path, default=Path("out/domain"), help="converted files")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here (.md)")
    a = ap.parse_args(argv)
    models = bundles(a.models)
    if not models:
        ap.error(f"no bundles in {a.models}: run make export")
    about = []
    for kind, b in models.items():
        m, d = b.manifest, b.manifest.training_domain
        names = ", ".join(i.label for i in m.identities) or "no instrument stated"
        sub = d.subspace or {}
        kev, dwell = (" - ".join(f"{v:.3g}" for v in r) if r else "?"
                      for r in (d.energy_kev, d.dwell_s))
        about.append(f"- {kind}: trained for {names} on {sub.get('source', '?')}; signal "
                     f"{kev} keV, dwell {dwell} s; subspace k="
                     f"{sub.get('components')}, threshold {sub.get('threshold', 0):.3g}"
                     + (f"; unfamiliar above {d.score_threshold:.3g}"
                        if d.score_threshold is not None else ""))
        print(about[-1])
    scans = [(f"{n} (simulated, held out)", a.data / f"{n}.h5") for n in HELD_OUT
             if (a.data / f"{n}.h5").is_file()] + real_scans(a.real, a.work)
    rows = [measure(name, path, models) for name, path in scans]
    text = table(rows, list(models))
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            "# Out-of-domain shares\n\nGenerated by `python -m training.domain_report` (also "
            "`make report` when `models/` holds bundles). Each cell: the share of the scan's "
            "pixels the edge marks outside that model's training domain (proto/BUNDLE.md, "
            "\"The in-domain test\"); (foreign): the scan's instrument is not one the model was "
            "trained for, so the daemon refuses the stream unless started with "
            "--allow-foreign; unfamiliar: trust score above its calibrated threshold.\n\n"
            + "\n".join(about) + "\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
