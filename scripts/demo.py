"""`make demo`: daemon + scanner emulator + watcher on a held-out scene, then a summary.

    python scripts/demo.py [--models models] [--data data] [--out out/demo]

Uses the bundles in --models and a held-out scene from --data (made by `make
data` / `make export`). Whatever is missing is made small here: a tiny scene
with training.scenes, stand-in bundles with export.tiny (ROI sums, not trained
models; the demo says so). Starts `python -m edge serve`, `python -m edge
watch`, `python -m edge view` (when the `view` extra is installed; no browser is
opened: the page's URL is printed) and `python -m edge replay` as child
processes on free loopback ports. The replay is paced so the scan takes about
--seconds (the page and the PNGs visibly grow; --dwell 0: as fast as allowed).
Afterwards it prints the daemon's status, writes the recording's final maps
(its `predictions` group) as TIFFs with `python -m edge export-maps`, and stops
everything it started.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from processes import free_port, stop  # scripts/, beside this file

from proto.bundle import KINDS
from proto.dataset import open_dataset
from training.catalogue import HELD_OUT, scene_candidates

ROOT = Path(__file__).resolve().parents[1]


def find_scene(data: Path, tiny_dir: Path) -> Path:
    tests = list(HELD_OUT.values())  # scenes no model was trained on
    for name in tests:
        for cand in scene_candidates(data, name):
            if cand.is_file():
                return cand
    print(f"[demo] no held-out scene in {data}: simulating a tiny one", flush=True)
    from training.scenes import make_scene

    return make_scene(tests[0], tiny_dir, tiny=True, progress=False)


def ensure_models(models: Path, stand_in: Path) -> Path:
    if all((models / k / "manifest.json").is_file() for k in KINDS):
        return models
    print(f"[demo] {models} lacks rgb/elements/trust bundles: using stand-in ROI bundles "
          "(export.tiny), not trained models; run `make export` for the real ones", flush=True)
    from export.tiny import write_tiny_bundles

    write_tiny_bundles(stand_in)
    return stand_in


def pace(scene: Path, seconds: float) -> float:
    """The dwell (s/pixel) that makes `scene` take about `seconds`: slow enough to watch."""
    with open_dataset(scene) as ds:
        height, width, _ = ds.shape
    return max(0.0, seconds) / (height * width)


def start_view(py: list[str], previews: str, snapshot: str, env: dict, out: Path,
               disabled: bool) -> subprocess.Popen | None:
    """Start the live page (no browser is opened) and print its URL, or print how to."""
    port = free_port()
    command = f"python -m edge view --previews {previews} --snapshot {snapshot} --port {port}"
    if disabled or importlib.util.find_spec("aiohttp") is None:
        why = "--no-view" if disabled else ("the view needs its extra: "
                                            "pip install '.[view]' (or `make setup`)")
        print(f"[demo] live view: not started ({why}); to watch, run `{command}` "
              f"(`make view` serves the default endpoints) and open http://127.0.0.1:{port}/",
              flush=True)
        return None
    log = open(out / "view.log", "wb")  # noqa: SIM115 (the child holds it; closed at exit)
    proc = subprocess.Popen([*py, "view", "--previews", previews, "--snapshot", snapshot,
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    print(f"[demo] live view: open http://127.0.0.1:{port}/ in a browser (served by "
          f"`{command}` until the demo ends; log {out / 'view.log'})", flush=True)
    return proc


def export(py: list[str], recording: str | None, maps: Path, env: dict) -> None:
    """The final maps as data: the recording's predictions group, and TIFFs of it."""
    if not recording or not Path(recording).is_file():
        print(f"  maps         no recording to export ({recording})")
        return
    print(f"  maps (HDF5)  {recording}, group /predictions (NeXus NXdata: element maps in "
          f"c/s, uncertainty, RGB, trust, masks; open with silx, h5web, PyMca or h5py)")
    r = subprocess.run([*py, "export-maps", recording, "--tiff", str(maps)], cwd=ROOT,
                       env=env, capture_output=True, text=True)
    if r.returncode == 0:
        tiffs = sorted(p.name for p in maps.glob("*.tif"))
        print(f"  maps (TIFF)  {len(tiffs)} files in {maps}: {', '.join(tiffs)}")
    else:
        print(f"  maps (TIFF)  not written: {(r.stderr or r.stdout).strip()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="models",
                    help="bundle folder (rgb/, elements/, trust/); stand-ins if missing")
    ap.add_argument("--data", default="data", help="folder with the held-out scene files")
    ap.add_argument("--out", default="out/demo", help="folder for PNGs, logs and recordings")
    ap.add_argument("--scene", help="dataset file to replay (default: a held-out scene)")
    ap.add_argument("--dwell", type=float, default=None,
                    help="s per pixel; 0 = as fast as allowed (default: --seconds / pixels)")
    ap.add_argument("--seconds", type=float, default=25.0,
                    help="how long the paced scan takes when --dwell is not given (default 25)")
    ap.add_argument("--no-view", action="store_true", help="do not start the live web view")
    ap.add_argument("--pixels-per-message", type=int, default=16,
                    help="pixels in each spectra message of the replay")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = Path(args.scene) if args.scene else find_scene(Path(args.data), out / "scene")
    models = ensure_models(Path(args.models), out / "stand_in_models")
    dwell = args.dwell if args.dwell is not None else pace(scene, args.seconds)
    ingest, previews, snapshot = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    py = [sys.executable, "-m", "edge"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs: list[subprocess.Popen] = []
    log = open(out / "daemon.log", "wb")  # noqa: SIM115 (closed below)
    try:
        procs.append(subprocess.Popen(
            [*py, "serve", "--ingest", ingest, "--previews", previews, "--snapshot", snapshot,
             "--models", str(models), "--recordings", str(out / "recordings"),
             "--allow-foreign"],  # the default models mix instruments: served, flagged
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        status = [*py, "status", "--snapshot", snapshot, "--timeout", "1"]
        for _ in range(60):
            if subprocess.run(status, cwd=ROOT, env=env, capture_output=True).returncode == 0:
                break
            if procs[0].poll() is not None:
                raise SystemExit(f"daemon exited:\n{(out / 'daemon.log').read_text()[-2000:]}")
        watcher = subprocess.Popen(
            [*py, "watch", "--previews", previews, "--snapshot", snapshot,
             "--out", str(out / "png"), "--every", "2", "--timeout", "540"], cwd=ROOT, env=env)
        procs.append(watcher)
        view = start_view(py, previews, snapshot, env, out, args.no_view)
        if view:
            procs.append(view)
        time.sleep(3.0 if view and dwell > 0 else 1.0)  # a moment to open the page
        print(f"[demo] replaying {scene} ({args.pixels_per_message} px/message, dwell "
              f"{dwell * 1000:.3g} ms/pixel)", flush=True)
        t0 = time.perf_counter()
        subprocess.run([*py, "replay", str(scene), "--ingest", ingest, "--dwell", str(dwell),
                        "--pixels-per-message", str(args.pixels_per_message),
                        "--order", "serpentine"], cwd=ROOT, env=env, check=True, timeout=540)
        watcher.wait(timeout=120)
        seconds = time.perf_counter() - t0  # replay start -> the watcher has the final frames
        s = json.loads(subprocess.run(status, cwd=ROOT, env=env, capture_output=True,
                                      text=True, check=True).stdout)
        c, lat = s["counters"], s["latency_ms"]
        print("[demo] summary")
        print(f"  scene        {scene.name}: {c.get('width')} x {c.get('height')} pixels, "
              f"{c.get('filled')} on the canvas")
        print(f"  accepted     {c['accepted']}   rejected {s['rejected'] or 'none'}")
        print(f"  rate         {c['accepted'] / seconds:.0f} spectra/s end to end "
              f"({c['accepted']} in {seconds:.2f} s incl. process start-up of replay/watch"
              f"{'; paced by the dwell, --dwell 0 for full speed' if dwell > 0 else ''})")
        print(f"  latency      p50 {lat.get('p50', 0):.2f} ms  p99 {lat.get('p99', 0):.2f} ms "
              "(received -> canvas)")
        recording = s["detail"].get("scan", {}).get("recording")
        print(f"  recording    {recording}")
        print(f"  instrument   {s['detail'].get('scan', {}).get('instrument')}; foreign "
              f"models {', '.join(s['foreign']) or 'none'}; outside training domain "
              + (", ".join(f"{k} {v:.0%}" for k, v in sorted(s["out_of_domain"].items()))
                 or "not checked"))
        print(f"  previews     {sorted(p.name for p in (out / 'png').glob('*.png'))} "
              f"in {out / 'png'}")
        export(py, recording and str(out / "recordings" / recording), out / "maps", env)
        return 0
    finally:
        stop(procs)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
