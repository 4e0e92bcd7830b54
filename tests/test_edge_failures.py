"""Friendly failures (issue 11): an operator's mistake is one line that says what to do and
a non-zero exit, never a traceback or a hang: port in use, no daemon, no models folder,
no config file, no dataset file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.edge_support import ROOT, Daemon, free_port, free_ports, make_bundles, make_scan


def edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def one_line(r: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("fail") / "models")


def test_port_in_use_says_another_daemon_may_run(models, tmp_path):
    d = Daemon(models, tmp_path / "rec", log=tmp_path / "log").start()
    try:
        previews, snapshot = free_ports(2)
        r = edge("serve", "--models", str(models), "--recordings", str(tmp_path / "rec2"),
                 "--ingest", d.ingest, "--previews", f"tcp://127.0.0.1:{previews}",
                 "--snapshot", f"tcp://127.0.0.1:{snapshot}")
        one_line(r, 1, "cannot bind", "another daemon may be running", "--ingest")
    finally:
        d.stop()


def test_the_tests_daemon_moves_off_a_port_taken_after_it_was_picked(models, tmp_path):
    # the kernel can hand a picked port to another process before the daemon binds it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        d = Daemon(models, tmp_path / "rec", log=tmp_path / "log")
        d.ingest = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        d.start()
        try:
            assert d.ingest != f"tcp://127.0.0.1:{taken.getsockname()[1]}"
            assert len({d.ingest, d.previews, d.snapshot}) == 3
            assert d.status().state == "idle"
        finally:
            d.stop()


def test_no_daemon_replay_and_watch_give_up_with_a_message(tmp_path):
    scan = make_scan(tmp_path / "scan.h5", 3, 4)
    nobody = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r = edge("replay", str(scan), "--ingest", nobody, "--timeout", "1")
    one_line(r, 1, "no daemon accepted a connection on", "python -m edge serve")
    r = edge("replay", str(scan), "--ingest", nobody, "--snapshot", nobody, "--timeout", "1")
    one_line(r, 1, "no daemon", "python -m edge serve")
    r = edge("watch", "--previews", nobody, "--snapshot", nobody, "--timeout", "1",
             "--out", str(tmp_path / "png"))
    one_line(r, 1, "no daemon answered on", "--snapshot")
    assert time.monotonic() - t0 < 30  # bounded: each gave up after its timeout
    assert not (tmp_path / "png").exists()


def test_missing_models_config_or_dataset_is_one_line(tmp_path):
    r = edge("serve", "--models", str(tmp_path / "nope"), "--recordings", str(tmp_path / "r"))
    one_line(r, 2, "no models folder", "make export", "--models")
    r = edge("serve", "--config", str(tmp_path / "edge.toml"))
    one_line(r, 2, "edge.toml", "cannot read the config file")
    r = edge("replay", str(tmp_path / "missing.h5"))
    one_line(r, 1, "no such dataset file")
