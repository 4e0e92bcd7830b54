"""A lab's colour workflow end to end: convert -> register -> train -> export -> serve ->
the live RGB preview of the held-out area.

    python scripts/lab_rgb_demo.py [--data data] [--out out/lab_rgb_demo] [--tiny]
                                   [--models knn10,encoder,mlp_dwell,mlp_library] [--key=value]

Stands in for the lab with the two simulated scenes of experiment 1 (`m1_virgin` trains,
`m1_child` is the held-out area): each scan is exported as a plain HDF5 cube with its live
and real times and no instrument (what a scanner's export gives), and photographed by a
simulated camera (training.camera). Then every step is the user's own command, run as a
child process: `python -m training.convert` with the M1 instrument description,
`python -m training.register` from the four corners a user clicks (a few photo pixels off)
with refinement and a check picture, `python -m training.lab_rgb` (train on one area, test on
the other), `python -m export model rgb`, and `python -m edge serve` + `edge watch` + `edge
replay` of the held-out scan on loopback. The daemon's final RGB canvas (written into its
recording) is compared with the offline held-out figures. Scenes missing from --data are
simulated small (tiny) into the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: the project's packages

from processes import free_port, stop  # noqa: E402  (scripts/, beside this file)

from proto.dataset import open_dataset  # noqa: E402
from training import camera  # noqa: E402
from training.catalogue import RGB_TEST, RGB_TRAIN, scene_candidates  # noqa: E402
from training.metrics import delta_e_rgb, r2_rgb  # noqa: E402

INSTRUMENT = ROOT / "training" / "instruments" / "m1_mistral.toml"
OTHER_INSTRUMENT = ROOT / "training" / "instruments" / "m6_jetstream.toml"
CLICK_ERROR_PX = 4.0
PY = [sys.executable]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def rel(path: Path) -> str:
    """A path as the commands are given it (from the project root, where they run)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def step(title: str, args: list[str], **kw) -> subprocess.CompletedProcess:
    print(f"\n[lab-rgb] {title}\n$ python {' '.join(args)}", flush=True)
    return subprocess.run([*PY, *args], cwd=ROOT, env=ENV, check=True, **kw)


def scene_file(data: Path, name: str, out: Path, tiny: bool) -> Path:
    for cand in scene_candidates(data, name)[1 if tiny else 0:]:
        if cand.is_file():
            return cand
    from training.scenes import make_scene

    print(f"[lab-rgb] no {name} in {data}: simulating a tiny one", flush=True)
    return make_scene(name, out / "scenes", tiny=True, progress=False, png=False)


def scanner_export(scene: Path, path: Path) -> dict:
    """The scan as a plain HDF5 cube (y, x, channel) with live/real times; no instrument."""
    with open_dataset(scene) as ds:
        counts, grid = np.asarray(ds.counts), ds.grid
        live, real = np.asarray(ds.live_time_s), np.asarray(ds.real_time_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["counts"], f["live_time"], f["real_time"] = counts, live, real
    return {"offset": grid.offset, "gain": grid.gain}


def serve_and_watch(models: Path, scan: Path, out: Path, foreign: Path
                    ) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """Daemon + watcher + replay of `scan` on loopback, then a replay of `foreign` (the same
    scan stated as another instrument's): (the RGB PNG, the recording, the foreign replay)."""
    ingest, previews, snapshot = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    edge = [*PY, "-m", "edge"]
    procs: list[subprocess.Popen] = []
    log = open(out / "daemon.log", "wb")  # noqa: SIM115 (closed below)
    try:
        serve = [*edge, "serve", "--ingest", ingest, "--previews", previews, "--snapshot",
                 snapshot, "--models", rel(models), "--recordings", rel(out / "recordings")]
        print(f"\n[lab-rgb] serve, watch, replay\n$ python {' '.join(serve[1:])}", flush=True)
        procs.append(subprocess.Popen(serve, cwd=ROOT, env=ENV, stdout=log,
                                      stderr=subprocess.STDOUT))
        status = [*edge, "status", "--snapshot", snapshot, "--timeout", "1"]
        for _ in range(60):
            if subprocess.run(status, cwd=ROOT, env=ENV, capture_output=True).returncode == 0:
                break
            if procs[0].poll() is not None:
                raise SystemExit(f"daemon exited:\n{(out / 'daemon.log').read_text()[-2000:]}")
        png = out / "png"
        watcher = subprocess.Popen([*edge, "watch", "--previews", previews, "--snapshot",
                                    snapshot, "--out", rel(png), "--every", "2",
                                    "--timeout", "540"], cwd=ROOT, env=ENV)
        procs.append(watcher)
        time.sleep(1.0)
        subprocess.run([*edge, "replay", rel(scan), "--ingest", ingest, "--snapshot", snapshot,
                        "--dwell", "0", "--pixels-per-message", "16"], cwd=ROOT, env=ENV,
                       check=True, timeout=540)  # --snapshot: delivery confirmed by the daemon
        if watcher.wait(timeout=120) != 0:
            raise SystemExit("edge watch failed (see above)")
        s = json.loads(subprocess.run(status, cwd=ROOT, env=ENV, capture_output=True,
                                      text=True, check=True).stdout)
        recording = out / "recordings" / s["detail"].get("scan", {}).get("recording", "")
        refused = [*edge, "replay", rel(foreign), "--ingest", ingest, "--snapshot", snapshot,
                   "--scan-id", "foreign", "--pixels-per-message", "16"]
        print(f"\n[lab-rgb] the same scan, stated as another instrument\n$ python "
              f"{' '.join(refused[1:])}", flush=True)
        other = subprocess.run(refused, cwd=ROOT, env=ENV, capture_output=True, text=True,
                               timeout=120)
        print((other.stdout + other.stderr).strip(), flush=True)
        return png / "rgb.png", recording, other
    finally:
        stop(procs)
        log.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--data", default="data", help="folder with m1_virgin.h5 and m1_child.h5")
    ap.add_argument("--out", default="out/lab_rgb_demo", help="folder for everything it makes")
    ap.add_argument("--tiny", action="store_true", help="use (or make) the tiny scenes")
    ap.add_argument("--models", default=None, help="models for training.lab_rgb --models")
    a, rest = ap.parse_known_args(argv)
    out = Path(a.out).resolve()
    lab = out / "lab"
    datasets = {}
    for i, name in enumerate((RGB_TRAIN, RGB_TEST)):
        scene = scene_file(Path(a.data), name, out, a.tiny)
        cal = scanner_export(scene, lab / f"{name}_export.h5")
        shot = camera.photograph_scene(name, lab / f"{name}.jpg", tiny="tiny" in scene.name,
                                       seed=21 + i)
        corners = camera.clicked(shot, CLICK_ERROR_PX, seed=21 + i)
        datasets[name] = lab / f"{name}.h5"
        datasets[name].unlink(missing_ok=True)
        step(f"convert {name} (the scanner's export + the lab's instrument description)",
             ["-m", "training.convert", rel(lab / f"{name}_export.h5"), rel(datasets[name]),
              "--instrument", rel(INSTRUMENT), "--dataset", "counts", "--axes", "yxc",
              "--live-time-dataset", "live_time", "--real-time-dataset", "real_time",
              "--offset", repr(cal["offset"]), "--gain", repr(cal["gain"])])
        step(f"register {name}'s photograph from its four clicked corners",
             ["-m", "training.register", rel(shot.photo), rel(datasets[name]), "--corners",
              *(f"{x:.1f},{y:.1f}" for x, y in corners), "--refine", "all", "--spot-px", "0",
              "--check", rel(lab / f"{name}_check.png")])
    trained = out / "lab_rgb"
    models_arg = ["--models", a.models] if a.models else []
    step("train on one area, test on the other",
         ["-m", "training.lab_rgb", rel(datasets[RGB_TRAIN]), "--test", rel(datasets[RGB_TEST]),
          "--out", rel(trained), *models_arg, *rest])
    bundles = out / "models"
    step("export the best as the rgb bundle",
         ["-m", "export", "model", "rgb", "--trained", rel(trained / "trained"),
          "--out", rel(bundles), "--data", rel(trained)])
    foreign = lab / f"{RGB_TEST}_as_m6.h5"
    foreign.unlink(missing_ok=True)
    step("convert the held-out scan again, stated as an M6 Jetstream's (item 3)",
         ["-m", "training.convert", rel(lab / f"{RGB_TEST}_export.h5"), rel(foreign),
          "--instrument", rel(OTHER_INSTRUMENT), "--dataset", "counts", "--axes", "yxc",
          "--live-time-dataset", "live_time", "--real-time-dataset", "real_time",
          "--offset", repr(cal["offset"]), "--gain", repr(cal["gain"])])
    png, recording, other = serve_and_watch(bundles, datasets[RGB_TEST], out, foreign)

    from proto import predictions

    live = predictions.read(recording).rgb
    live = live / 255.0 if live.dtype == np.uint8 else live
    with open_dataset(datasets[RGB_TEST]) as ds:
        photo = np.asarray(ds.photo_rgb) / 255.0
    summary = json.loads((trained / "lab_rgb.json").read_text())
    best = summary["best"]
    offline = summary["models"][best]
    r2 = r2_rgb(photo.reshape(-1, 3), live.reshape(-1, 3))
    de = float(np.median(delta_e_rgb(photo.reshape(-1, 3), live.reshape(-1, 3))))
    manifest = json.loads((bundles / "rgb" / "manifest.json").read_text())
    lines = [
        "[lab-rgb] summary",
        f"  held-out area   {RGB_TEST}: {photo.shape[1]} x {photo.shape[0]} pixels",
        f"  exported        {best} (held-out R2 {offline['r2']:.3f}, median dE2000 "
        f"{offline['delta_e_median']:.2f}); instruments in the manifest: "
        f"{[i['name'] for i in manifest.get('instruments', [])]}",
        f"  live preview    R2 {r2:.3f}, median dE2000 {de:.2f} against the registered "
        "photograph (the daemon's final canvas from its recording)",
        f"  live RGB PNG    {rel(png)}",
        f"  other instrument  replay exit {other.returncode}: "
        f"{(other.stdout + other.stderr).strip().splitlines()[-1:]}",
        f"  recording       {rel(recording)}",
        f"  check pictures  {sorted(rel(p) for p in lab.glob('*_check.png'))}",
    ]
    print("\n".join(lines))
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    if other.returncode == 0:
        print("[lab-rgb] FAILED: the daemon served a stream from another instrument")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
