"""The client commands of `python -m edge`: replay, watch, status, reload and keys.

Every operator mistake (no daemon, a refused scan, a missing key) is one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge import config
from edge.security import CLIENT, ClientKeys, SecurityError, create_keys, load_client


def add_security_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--curve-keys", metavar="DIR",
                   help="CURVE keys of a daemon that requires them: DIR/server.key (the "
                        "daemon's public key) and DIR/<client>.key_secret (from "
                        "`python -m edge keys DIR`)")
    p.add_argument("--curve-client", default=CLIENT, metavar="NAME",
                   help=f"which client key pair in --curve-keys (default {CLIENT})")


def add_replay_options(rp: argparse.ArgumentParser) -> None:
    rp.add_argument("--snapshot", metavar="ENDPOINT",
                    help="the daemon's request endpoint, to confirm delivery (default "
                         f"{config.Config.snapshot} when --ingest is the default)")
    rp.add_argument("--timeout", type=float, default=10.0,
                    help="seconds the daemon may take nothing and answer nothing before "
                         "replay gives up (default 10)")
    add_security_options(rp)


def add_keys_parser(sub) -> None:
    kp = sub.add_parser("keys", help="make CURVE key pairs for the daemon and its clients",
                        description="Make CURVE keys: DIR/server.key(_secret) (once), "
                                    "DIR/<client>.key(_secret), DIR/clients/<client>.key (the "
                                    "daemon's allow-list). Serve with --curve-keys DIR; give "
                                    "clients --curve-keys DIR too.")
    kp.add_argument("folder", help="folder for the keys (created)")
    kp.add_argument("--client", default=CLIENT, help=f"client key name (default {CLIENT})")


def client_keys(args: argparse.Namespace) -> ClientKeys | None:
    folder = getattr(args, "curve_keys", None)
    return load_client(folder, args.curve_client) if folder else None


def _fail(prog: str, command: str, message: object) -> int:
    print(f"{prog} {command}: error: {message}", file=sys.stderr)
    return 1


def replay_cmd(prog: str, args: argparse.Namespace) -> int:
    from edge.link import LinkError
    from edge.replay import replay

    if not Path(args.file).is_file():
        return _fail(prog, "replay", f"no such dataset file: {args.file}")
    requests = args.snapshot
    if requests is None and args.ingest == config.Config.ingest:
        requests = config.Config.snapshot
    try:
        r = replay(
            args.file, args.ingest, order=args.order,
            dwell_s=None if args.dwell < 0 else args.dwell,
            pixels_per_message=args.pixels_per_message, scan_id=args.scan_id,
            limit=args.limit, send_end=not args.no_end, requests=requests,
            keys=client_keys(args), timeout_s=args.timeout,
        )
    except (LinkError, SecurityError) as e:
        return _fail(prog, "replay", e)
    print(f"replayed {r.pixels} pixels of {r.scan_id} in {r.messages} messages, "
          f"{r.seconds:.2f} s, {r.rate:.0f} pixels/s; {r.confirmed}")
    return 0


def watch_cmd(prog: str, args: argparse.Namespace) -> int:
    from edge.watch import WatchError, watch

    try:
        m = watch(args.previews, args.snapshot, args.out, every_s=args.every,
                  until_end=not args.follow, timeout_s=args.timeout, keys=client_keys(args))
    except (WatchError, SecurityError) as e:
        return _fail(prog, "watch", e)
    how = f" ({m.end_status})" if m.end_status else ""
    print(f"[watch] done: scan {m.scan_id}{how}, seq {m.seq}, PNGs in {args.out}")
    return 0


def request_cmd(prog: str, args: argparse.Namespace) -> int:
    """`status` or `reload`: one request, the reply's status as JSON."""
    from edge.watch import request
    from proto import wire

    message = (wire.SnapshotRequest(topics=()) if args.command == "status"
               else wire.Control(command="reload_models", models=getattr(args, "models", None)))
    try:
        reply = request(args.snapshot, message, args.timeout, client_keys(args))
    except TimeoutError as e:
        print(e, file=sys.stderr)
        return 1
    except SecurityError as e:
        return _fail(prog, args.command, e)
    if isinstance(reply, wire.Error):
        return _fail(prog, args.command, f"the daemon refused it: {reply.reason} {reply.detail}")
    s = reply.status
    print(json.dumps({"scan_id": s.scan_id, "seq": s.seq, "state": s.state,
                      "refused": s.refused, "foreign": list(s.foreign),
                      "out_of_domain": s.out_of_domain,
                      "counters": s.counters, "rates": s.rates, "latency_ms": s.latency_ms,
                      "rejected": s.errors, "detail": s.detail}, indent=2, default=str))
    return 0


def keys_cmd(prog: str, args: argparse.Namespace) -> int:
    try:
        made = create_keys(args.folder, args.client)
    except (SecurityError, OSError) as e:
        return _fail(prog, "keys", e)
    for p in made:
        print(p)
    print(f"serve with --curve-keys {args.folder}; clients take --curve-keys {args.folder} "
          f"(copy server.key and {args.client}.key_secret to a client's machine)")
    return 0
