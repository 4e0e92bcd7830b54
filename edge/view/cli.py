"""`python -m edge view` flags and start-up; aiohttp is imported only when the view runs.

The page has no login of its own, so it is served on loopback unless the operator
says otherwise: another address needs `--insecure` (on a trusted network only; from
another machine, an SSH tunnel to the loopback port is the safe way in). Towards the
daemon the view is a client like `watch`: `--curve-keys DIR` when the daemon uses CURVE.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5558  # next to the daemon's 5555-5557
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge.client_cli import add_security_options
    from edge.config import Config  # the daemon's defaults, without importing the daemon

    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to serve the page on (default {DEFAULT_HOST}; another "
                        f"address needs --insecure)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port of the page (default {DEFAULT_PORT})")
    p.add_argument("--previews", default=Config.previews,
                   help=f"the daemon's PUB endpoint (default {Config.previews})")
    p.add_argument("--snapshot", default=Config.snapshot,
                   help=f"the daemon's ROUTER endpoint (default {Config.snapshot})")
    p.add_argument("--max-side", type=int, default=1024,
                   help="largest image side sent to a browser at once; bigger scans are "
                        "sent as overviews, full resolution where the user zooms "
                        "(default 1024)")
    add_security_options(p)  # the same client keys as watch and replay, for a CURVE daemon
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host: anyone who can reach it sees the scan")
    p.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS,
                   help="log verbosity (default WARNING)")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or "0.0.0.0"-like wildcard: reachable from elsewhere


def run(prog: str, args: argparse.Namespace) -> int:
    """Serve the page until interrupted; user mistakes are one line and a non-zero exit."""
    def error(text: str, code: int = 2) -> int:
        print(f"{prog} view: error: {text}", file=sys.stderr)
        return code

    if not is_loopback_host(args.host) and not args.insecure:
        return error(f"--host {args.host} would show the scan to anyone who can reach it "
                     f"(the page has no login): keep the default {DEFAULT_HOST} and use an "
                     f"SSH tunnel, or add --insecure on a trusted network")
    if not 0 <= args.port <= 65535:
        return error(f"--port {args.port} is not a port number (0-65535)")
    if not 16 <= args.max_side <= 8192:
        return error(f"--max-side {args.max_side} outside 16-8192")
    from edge.client_cli import client_keys
    from edge.security import SecurityError

    try:
        keys = client_keys(args)
    except SecurityError as e:
        return error(str(e))
    try:
        from edge.view import server
    except ImportError as e:
        return error(f"the view needs the `view` extra ({e.name or e}): "
                     f"pip install 'maxrf-edge[view]'")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        server.serve(args.host, args.port, args.previews, args.snapshot,
                     max_side=args.max_side, keys=keys)
    except OSError as e:
        return error(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}", 1)
    return 0
