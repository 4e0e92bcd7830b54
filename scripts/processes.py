"""What the demo scripts share: loopback ports and stopping the processes they started."""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    """A free TCP port on loopback (the demos bind nothing else)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the still-running ones, last started first (watchers before the daemon, so
    none sees it vanish); kill any that outlive 10 s."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
