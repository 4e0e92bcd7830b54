"""Issue 11 item 12: no one else in. CURVE on all three channels (opt-in), no exposure
beyond loopback without it, and reload_models only from inside the models root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import zmq
import zmq.auth

from edge.link import LinkError
from edge.replay import replay
from edge.security import check_exposure, inside_root, is_loopback, load_client
from edge.watch import Watcher, request
from proto import wire
from tests.edge_support import ROOT, Daemon, make_bundles, make_scan


def edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))


class CurveDaemon(Daemon):
    """The test daemon, asked for its status as an admitted CURVE client."""

    def __init__(self, *args, keys, **kw) -> None:
        super().__init__(*args, **kw)
        self.keys = keys

    def status(self, timeout_s: float = 5.0) -> wire.Status:
        return request(self.snapshot, wire.SnapshotRequest(topics=()), timeout_s,
                       self.keys).status


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("sec") / "models")


def test_item12_curve_refuses_unknown_clients_and_serves_admitted_ones(models, tmp_path):
    keys = tmp_path / "keys"
    made = edge("keys", str(keys))
    assert made.returncode == 0, made.stderr
    assert (keys / "server.key_secret").is_file() and (keys / "clients" / "client.key").is_file()
    assert oct((keys / "client.key_secret").stat().st_mode)[-3:] == "600"
    admitted = load_client(keys)
    outsider_dir = tmp_path / "outsider"  # a key pair that is not in the allow-list
    outsider_dir.mkdir()
    zmq.auth.create_certificates(outsider_dir, "client")
    shutil.copy(keys / "server.key", outsider_dir / "server.key")
    outsider = load_client(outsider_dir)
    scan = make_scan(tmp_path / "scan.h5", 3, 4)
    d = CurveDaemon(models, tmp_path / "rec", "--curve-keys", str(keys), keys=admitted,
                    log=tmp_path / "log").start()
    try:
        # an outsider's key: the handshake fails, replay says so, nothing reaches the daemon
        with pytest.raises(LinkError, match="refused this client's key"):
            replay(scan, d.ingest, keys=outsider, timeout_s=3)
        # no CURVE at all: a plain PUSH "sends" a whole scan into the void
        plain = zmq.Context.instance().socket(zmq.PUSH)
        plain.connect(d.ingest)
        for msg in (wire.ScanStart(scan_id="intruder", width=4, height=3, channels=512,
                                   offset_kev=0.0, gain_kev=0.04, dwell_s=0.01),
                    wire.ScanEnd(scan_id="intruder", status="success", pixel_count=0)):
            plain.send(wire.encode(msg), zmq.NOBLOCK)
        time.sleep(1.0)
        plain.close(0)
        with pytest.raises(TimeoutError):  # requests without CURVE get no answer
            request(d.snapshot, wire.SnapshotRequest(topics=()), 1.0)
        with pytest.raises(TimeoutError):
            request(d.snapshot, wire.SnapshotRequest(topics=()), 1.0, outsider)
        s = d.status()
        assert s.counters["messages"] == 0 and s.scan_id == "" and not s.errors
        # the admitted client: replay confirmed, previews and snapshots served, CLI too
        watcher = Watcher(d.previews, d.snapshot, keys=admitted)
        try:
            r = replay(scan, d.ingest, requests=d.snapshot, keys=admitted, scan_id="ok",
                       pixels_per_message=4)
            assert r.confirmed.startswith("confirmed: 12 pixels accepted")
            deadline = time.monotonic() + 10
            while watcher.mirror.scan_id != "ok" and time.monotonic() < deadline:
                watcher.poll(100)  # previews over CURVE
            assert watcher.mirror.scan_id == "ok" and watcher.mirror.applied > 0
        finally:
            watcher.close()
        st = edge("status", "--snapshot", d.snapshot, "--curve-keys", str(keys))
        assert st.returncode == 0 and '"scan_id": "ok"' in st.stdout, st.stderr
        assert edge("status", "--snapshot", d.snapshot, "--timeout", "0.5").returncode == 1
        s = d.status()
        assert s.counters["messages"] == 5 and s.counters["scan_pixels_accepted"] == 12
    finally:
        d.stop()


def test_item12_no_exposure_beyond_loopback_without_curve(models, tmp_path):
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/x")
    assert is_loopback("tcp://[::1]:5555") and is_loopback("tcp://localhost:1")
    assert not is_loopback("tcp://*:5555") and not is_loopback("tcp://0.0.0.0:5555")
    assert not is_loopback("tcp://eth0:5555") and not is_loopback("tcp://192.168.1.5:5555")
    check_exposure(("tcp://*:1",), curve=True, insecure=False)
    check_exposure(("tcp://*:1",), curve=False, insecure=True)
    r = edge("serve", "--models", str(models), "--recordings", str(tmp_path / "rec"),
             "--ingest", "tcp://0.0.0.0:5555")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "tcp://0.0.0.0:5555" in line[0] and "--curve-keys" in line[0]
    assert "--insecure" in line[0]


def test_item12_reload_only_inside_the_models_root(tmp_path):
    root = make_bundles(tmp_path / "models", seed=1)
    make_bundles(root / "alt", seed=2)  # a second set inside the root: allowed by name
    outside = make_bundles(tmp_path / "elsewhere", seed=3)  # loadable, but outside
    (root / "link").symlink_to(outside)  # a way out through a link
    assert inside_root(root, "alt") == (root / "alt").resolve()
    assert inside_root(root, "../elsewhere") is None and inside_root(root, "link") is None
    d = Daemon(root, tmp_path / "rec", log=tmp_path / "log").start()
    try:
        before = d.status().detail["models"]["rgb"]["sha256"]
        replies = []
        for name in (str(outside), "../elsewhere", "link", "/no/such/folder", "../nothing"):
            reply = request(d.snapshot, wire.Control(command="reload_models", models=name))
            control = reply.status.detail["control"]
            assert control == {"ok": False, "reason": "forbidden_path"}, (name, control)
            assert reply.status.detail["models"]["rgb"]["sha256"] == before
            text = str(reply.status.detail)
            assert str(tmp_path) not in text and "elsewhere" not in text, text
            detail = reply.status.detail
            replies.append(detail.get("last_request_error") or detail["last_error"])
        # the same answer whether the outside path exists or not: nothing learnt
        assert len(set(replies)) == 1, replies
        reply = request(d.snapshot, wire.Control(command="reload_models", models="alt"))
        assert reply.status.detail["control"]["ok"] is True
        s = d.status()
        assert s.detail["models"]["rgb"]["sha256"] != before
        assert s.detail["last_reload"].startswith("ok") and s.detail["last_reload"].endswith(
            "from models/alt") and str(tmp_path) not in str(s.detail)
    finally:
        d.stop()


def test_a_plain_request_to_a_curve_daemon_gives_up_in_its_time():
    """ZeroMQ drops a DEALER's pipe when a handshake fails (a plain client, a CURVE server)
    until it reconnects; a send in that window blocked without bound, and the live view's
    link hung at "connecting" (CI, 2026-12-01). Every send must give up in its time: shown
    on a socket with no pipe at all (disconnected: the same state, every time), then on
    requests to a CURVE server."""
    import threading

    from edge.watch import dealer

    public, secret = zmq.curve_keypair()
    server = zmq.Context.instance().socket(zmq.ROUTER)
    server.curve_server, server.curve_secretkey, server.curve_publickey = True, secret, public
    server.linger = 0
    endpoint = f"tcp://127.0.0.1:{server.bind_to_random_port('tcp://127.0.0.1')}"
    outcome: list[str] = []

    def send_without_a_pipe() -> None:
        sock = dealer(endpoint, None, 0.3)
        sock.disconnect(endpoint)
        try:
            sock.send_multipart([b"", b"x"])
            outcome.append("queued")
        except zmq.Again:
            outcome.append("gave up")
        finally:
            sock.close(0)

    try:
        worker = threading.Thread(target=send_without_a_pipe, daemon=True)
        worker.start()
        worker.join(10)
        assert outcome == ["gave up"]
        for _ in range(5):
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="does it want --curve-keys"):
                request(endpoint, wire.SnapshotRequest(topics=()), 0.3)
            assert time.monotonic() - t0 < 1.3
    finally:
        server.close(0)
