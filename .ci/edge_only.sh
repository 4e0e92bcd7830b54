#!/usr/bin/env bash
# Edge-only smoke test (`make smoke-edge`): the edge installs and runs alone.
#
# 1. .venv-edge gets `pip install '.[edge]'` (a wheel built from a clean copy of the tree:
#    no torch, onnx, PyMca, xraylib, scikit-learn; checked below).
# 2. The full .venv (`make setup`) makes tiny bundles and a tiny scan, as a training box would.
# 3. From a folder outside the repository (so only the installed package can be imported),
#    the edge venv runs `maxrf-edge serve` on ipc:// endpoints, `python -m edge watch`,
#    `python -m edge replay`, `maxrf-edge status` and `reload`, then checks the recording,
#    the snapshot and the PNGs against offline inference, and stops the daemon.
# Every step has a timeout; any failure exits non-zero with one [edge-only] FAILED line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FULL=$ROOT/.venv/bin/python
EDGE_VENV=$ROOT/.venv-edge
EPY=$EDGE_VENV/bin/python
T0=$SECONDS

fail() { echo "[edge-only] FAILED: $*" >&2; exit 1; }
step() { echo "[edge-only] $* ($((SECONDS - T0)) s)"; }

[[ -x $FULL ]] || fail "no full .venv: run make setup first"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edge-only.XXXXXX")
DAEMON_PID=""
WATCH_PID=""
cleanup() {
    local rc=$?
    for pid in $WATCH_PID $DAEMON_PID; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if ((rc != 0)) && [[ -f $WORK/daemon.log ]]; then
        echo "[edge-only] daemon log (last 40 lines):" >&2
        tail -n 40 "$WORK/daemon.log" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# ---- 1. the edge-only venv ---------------------------------------------------------------
# recreated when pyproject.toml changes (its pins), reused otherwise
if [[ ! -x $EPY || pyproject.toml -nt $EDGE_VENV/.created ]]; then
    step "creating .venv-edge"
    rm -rf "$EDGE_VENV"
    timeout 120 python3 -m venv "$EDGE_VENV" || fail "python3 -m venv .venv-edge"
    timeout 300 "$EPY" -m pip install --quiet --upgrade pip || fail "pip upgrade in .venv-edge"
    touch "$EDGE_VENV/.created"
fi
# a clean copy of the tree (tracked and new files, nothing ignored): an in-tree build would
# leave build/ behind, whose stale modules would end up in the next wheel
mkdir -p "$WORK/src"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail "needs a git checkout of the project"
git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$WORK/src" \
    || fail "copying the tree to build from"
step "installing '.[edge]' into .venv-edge"
# (pip rebuilds and reinstalls a local folder every time; the pinned deps stay)
timeout 600 "$EPY" -m pip install --quiet "$WORK/src[edge]" \
    || fail "pip install '.[edge]' into .venv-edge"
rm -rf "$WORK/src"
timeout 60 "$EPY" - <<'EOF' || fail "the edge venv holds a training-only package"
import importlib.util, sys
heavy = ["torch", "onnx", "PyMca5", "xraylib", "sklearn", "skl2onnx", "scipy", "matplotlib",
         "rsciio", "tqdm"]
found = [m for m in heavy if importlib.util.find_spec(m) is not None]
if found:
    sys.exit(f"[edge-only] FAILED: training-only packages installed: {found}")
EOF
timeout 60 "$EPY" -m pip check >/dev/null || fail "pip check in .venv-edge"

# ---- 2. bundles and a scan from the full environment -------------------------------------
step "tiny bundles and scan from the full .venv"
timeout 120 "$FULL" .ci/edge_only.py fixtures "$WORK" || fail "making the fixtures"
cp .ci/edge_only.py "$WORK/check.py"

# ---- 3. the edge alone, from outside the repository --------------------------------------
cd "$WORK"
export PYTHONPATH="" OMP_NUM_THREADS=1
IN=ipc://$WORK/in PUB=ipc://$WORK/pub SNAP=ipc://$WORK/snap
EDGE_CLI=$EDGE_VENV/bin/maxrf-edge
[[ -x $EDGE_CLI ]] || fail "the maxrf-edge entry point is not installed"

step "maxrf-edge serve"
"$EDGE_CLI" serve --ingest "$IN" --previews "$PUB" --snapshot "$SNAP" --models models \
    --recordings recordings --rate-hz 20 --flush-every-s 0.2 >daemon.log 2>&1 &
DAEMON_PID=$!
for _ in $(seq 60); do
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited at start"
    timeout 10 "$EDGE_CLI" status --snapshot "$SNAP" --timeout 0.5 >/dev/null 2>&1 && break
    sleep 0.5
done
timeout 10 "$EDGE_CLI" status --snapshot "$SNAP" --timeout 2 >status0.json \
    || fail "the daemon did not answer status within 30 s"
grep -q '"state": "idle"' status0.json || fail "the daemon is not idle at start"

step "python -m edge watch + replay"
timeout 90 "$EPY" -m edge watch --previews "$PUB" --snapshot "$SNAP" --out png --every 0.5 \
    --timeout 60 >watch.log 2>&1 &
WATCH_PID=$!
sleep 1.5  # the watcher subscribes and takes its snapshot before the scan starts
timeout 60 "$EPY" -m edge replay scan.h5 --ingest "$IN" --pixels-per-message 4 \
    --dwell 0.001 >replay.log 2>&1 || fail "replay: $(tail -n 3 replay.log)"
grep -q "replayed 192 pixels" replay.log || fail "replay: $(cat replay.log)"
wait "$WATCH_PID" || fail "watch: $(tail -n 3 watch.log)"
WATCH_PID=""
grep -q "done: scan scan" watch.log || fail "watch did not see the scan end: $(cat watch.log)"

step "status, snapshot, recording, PNGs"
timeout 20 "$EDGE_CLI" status --snapshot "$SNAP" >status.json || fail "status after the scan"
timeout 20 "$EPY" check.py status status.json
timeout 60 "$EPY" check.py check "$WORK" "$SNAP"
timeout 20 "$EDGE_CLI" reload --snapshot "$SNAP" >reload.json || fail "reload"
grep -q '"ok": true' reload.json || fail "reload refused: $(cat reload.json)"

step "stopping the daemon"
kill -TERM "$DAEMON_PID"
for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && fail "the daemon did not stop within 10 s of SIGTERM"
wait "$DAEMON_PID" || fail "the daemon exited with status $?"
DAEMON_PID=""

cd "$ROOT"
echo "[edge-only] sizes (MB): .venv-edge $(du -sm "$EDGE_VENV" | cut -f1), .venv $(du -sm .venv | cut -f1)"
echo "[edge-only] ok in $((SECONDS - T0)) s"
