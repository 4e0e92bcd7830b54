"""`python -m edge serve|replay|watch|status|reload`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from edge import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the daemon")
    config.add_arguments(serve)
    serve.add_argument("--log-level", default="INFO")

    rp = sub.add_parser("replay", help="stream a dataset file like a scanner")
    rp.add_argument("file")
    rp.add_argument("--ingest", default=config.Config.ingest)
    rp.add_argument("--order", choices=("raster", "serpentine"), default="raster")
    rp.add_argument("--dwell", type=float, default=0.0,
                    help="seconds per pixel; 0 = as fast as allowed, -1 = the file's own")
    rp.add_argument("--pixels-per-message", type=int, default=1)
    rp.add_argument("--scan-id")
    rp.add_argument("--limit", type=int, help="stop after this many pixels")
    rp.add_argument("--no-end", action="store_true", help="do not send scan_end")

    wt = sub.add_parser("watch", help="follow previews, write PNGs")
    wt.add_argument("--previews", default=config.Config.previews)
    wt.add_argument("--snapshot", default=config.Config.snapshot)
    wt.add_argument("--out", default="out/watch")
    wt.add_argument("--every", type=float, default=3.0)
    wt.add_argument("--timeout", type=float, default=600.0)
    wt.add_argument("--follow", action="store_true", help="keep going after the scan ends")

    for name, text in (("status", "print the daemon's status"),
                       ("reload", "ask the daemon to reload its models (between scans)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--snapshot", default=config.Config.snapshot)
        p.add_argument("--timeout", type=float, default=5.0)

    args = parser.parse_args(argv)
    if args.command == "serve":
        from edge.daemon import Daemon

        logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
        Daemon(config.from_args(args)).run()
        return 0
    if args.command == "replay":
        from edge.replay import replay

        r = replay(
            args.file, args.ingest, order=args.order,
            dwell_s=None if args.dwell < 0 else args.dwell,
            pixels_per_message=args.pixels_per_message, scan_id=args.scan_id,
            limit=args.limit, send_end=not args.no_end,
        )
        print(f"replayed {r.pixels} pixels of {r.scan_id} in {r.messages} messages, "
              f"{r.seconds:.2f} s, {r.rate:.0f} pixels/s")
        return 0
    if args.command == "watch":
        from edge.watch import watch

        m = watch(args.previews, args.snapshot, args.out, every_s=args.every,
                  until_end=not args.follow, timeout_s=args.timeout)
        print(f"[watch] done: scan {m.scan_id}, seq {m.seq}, PNGs in {args.out}")
        return 0
    from edge.watch import request
    from proto import wire

    message = (wire.SnapshotRequest(topics=()) if args.command == "status"
               else wire.Control(command="reload_models"))
    try:
        reply = request(args.snapshot, message, args.timeout)
    except TimeoutError as e:
        print(e, file=sys.stderr)
        return 1
    s = reply.status
    print(json.dumps({"scan_id": s.scan_id, "seq": s.seq, "state": s.state,
                      "counters": s.counters, "rates": s.rates, "latency_ms": s.latency_ms,
                      "rejected": s.errors, "detail": s.detail}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
