"""`python -m edge serve|replay|watch|view|export-maps|status|reload|keys` (`maxrf-edge`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge import client_cli, config
from edge.view import cli as view_cli

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser(prog: str = "python -m edge") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the daemon",
                           description="Run the daemon: ingest, record, infer, publish.")
    config.add_arguments(serve)
    serve.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                       help="log verbosity (default INFO)")

    rp = sub.add_parser("replay", help="stream a dataset file like a scanner",
                        description="Stream a dataset file to the daemon like a scanner.")
    rp.add_argument("file", help="dataset file (HDF5, proto/DATASET.md) to stream")
    rp.add_argument("--ingest", default=config.Config.ingest,
                    help=f"the daemon's PULL endpoint (default {config.Config.ingest})")
    rp.add_argument("--order", choices=("raster", "serpentine"), default="raster",
                    help="pixel order: raster, or serpentine (every other row reversed)")
    rp.add_argument("--dwell", type=float, default=0.0,
                    help="seconds per pixel; 0 = as fast as allowed, -1 = the file's own")
    rp.add_argument("--pixels-per-message", type=int, default=1,
                    help="pixels per spectra message (default 1)")
    rp.add_argument("--scan-id", help="scan id to send (default: the file's name)")
    rp.add_argument("--limit", type=int, help="stop after this many pixels")
    rp.add_argument("--no-end", action="store_true", help="do not send scan_end")
    client_cli.add_replay_options(rp)

    wt = sub.add_parser("watch", help="follow previews, write PNGs",
                        description="Follow the previews (snapshot first) and write PNGs.")
    wt.add_argument("--previews", default=config.Config.previews,
                    help=f"the daemon's PUB endpoint (default {config.Config.previews})")
    wt.add_argument("--snapshot", default=config.Config.snapshot,
                    help=f"the daemon's ROUTER endpoint (default {config.Config.snapshot})")
    wt.add_argument("--out", default="out/watch",
                    help="folder for rgb.png, elements.png, trust.png (default out/watch)")
    wt.add_argument("--every", type=float, default=3.0,
                    help="seconds between PNG writes (default 3)")
    wt.add_argument("--timeout", type=float, default=600.0,
                    help="give up after this many seconds (default 600)")
    wt.add_argument("--follow", action="store_true", help="keep going after the scan ends")
    client_cli.add_security_options(wt)

    vw = sub.add_parser("view", help="serve the live web page (the `view` extra)",
                        description="Serve the live page: the scan growing, element maps, "
                                    "trust, progress and a pixel's spectrum.")
    view_cli.add_arguments(vw)

    ex = sub.add_parser("export-maps", help="a recording's final maps as TIFF (+ RGB PNG)",
                        description="Write a recording's `predictions` group as one 32-bit "
                                    "float TIFF per element map plus the RGB as TIFF and PNG "
                                    "(needs the `maps` extra: tifffile).")
    ex.add_argument("recording", help="recording (dataset file) holding a predictions group")
    ex.add_argument("--tiff", required=True, metavar="DIR", help="folder for the TIFF files")

    for name, text in (("status", "print the daemon's status"),
                       ("reload", "ask the daemon to reload its models (between scans)")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--snapshot", default=config.Config.snapshot,
                       help=f"the daemon's ROUTER endpoint (default {config.Config.snapshot})")
        p.add_argument("--timeout", type=float, default=5.0,
                       help="seconds to wait for the reply; exit 1 without one (default 5)")
        if name == "reload":
            p.add_argument("--models", metavar="NAME",
                           help="a folder of bundles inside the daemon's models folder "
                                "(default: the models folder itself)")
        client_cli.add_security_options(p)
    client_cli.add_keys_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # usage lines name the command as it was typed: `python -m edge` or the `maxrf-edge` script
    name = Path(sys.argv[0]).name
    parser = build_parser("python -m edge" if name in ("__main__.py", "-c", "") else name)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(parser.prog, args)
    if args.command == "replay":
        return client_cli.replay_cmd(parser.prog, args)
    if args.command == "keys":
        return client_cli.keys_cmd(parser.prog, args)
    if args.command == "view":
        return view_cli.run(parser.prog, args)
    if args.command == "export-maps":
        from edge.export_maps import ExportError, export_maps

        try:
            files = export_maps(args.recording, args.tiff)
        except ExportError as e:
            print(f"{parser.prog} export-maps: error: {e}", file=sys.stderr)
            return 1
        print(f"[export-maps] {len(files)} files in {args.tiff}")
        return 0
    if args.command == "watch":
        return client_cli.watch_cmd(parser.prog, args)
    return client_cli.request_cmd(parser.prog, args)


def serve(prog: str, args: argparse.Namespace) -> int:
    """Run the daemon; a bad setting or an endpoint that cannot be bound is one line, no
    traceback: exit 2 for settings (like argparse), 1 for the endpoints."""
    try:
        cfg = config.from_args(args)
    except config.ConfigError as e:
        print(f"{prog} serve: error: {e}", file=sys.stderr)
        return 2
    if not Path(cfg.models).is_dir():
        print(f"{prog} serve: error: no models folder {cfg.models!r}: make one (`make export`, "
              f"or `make demo` for small ones) or give --models DIR", file=sys.stderr)
        return 2
    import zmq

    from edge.daemon import Daemon
    from edge.security import SecurityError

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        daemon = Daemon(cfg)
    except SecurityError as e:
        print(f"{prog} serve: error: {e}", file=sys.stderr)
        return 2
    except zmq.ZMQError as e:
        hint = (": another daemon may be running there (`python -m edge status`); stop it or "
                "give other --ingest/--previews/--snapshot endpoints"
                if e.errno == zmq.EADDRINUSE else "")
        print(f"{prog} serve: error: cannot bind {cfg.ingest}, {cfg.previews}, "
              f"{cfg.snapshot}: {e}{hint}", file=sys.stderr)
        return 1
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
