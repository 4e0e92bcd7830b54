"""Daemon settings: plain values, from flags and an optional TOML or JSON file.

Flags override the file, the file overrides the defaults. Every endpoint is on
loopback by default so nothing is exposed off the box unless asked for.

Every value is type- and range-checked where it enters (file, flag or code),
so a wrong setting stops the daemon at start with one line naming the key and
its source, instead of crashing it on the scan's first message.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from proto.messages import MAX_MESSAGE_BYTES

COMPRESSIONS = ("none", "lzf", "gzip")
SUBSCRIPTION_MAX_BYTES = 65536  # ZMQ_MAXMSGSIZE of PUB: it only receives subscriptions
REQUEST_HWM = 64  # requests queued per client: 64 x request_max_bytes (1 MiB) = 64 MiB
# the highest value of a setting the protocol bounds (SPEC.md 6: a receiver may go lower)
UPPER: dict[str, int] = {"max_message_bytes": MAX_MESSAGE_BYTES,
                         "max_frame_bytes": MAX_MESSAGE_BYTES,
                         "request_max_bytes": MAX_MESSAGE_BYTES,
                         # a reply's tiles plus its status stay within the protocol's limit
                         "max_reply_bytes": MAX_MESSAGE_BYTES // 2}


class ConfigError(ValueError):
    """A setting that cannot be used; str() is one line naming the key and its source."""


@dataclass
class Config:
    ingest: str = "tcp://127.0.0.1:5555"  # PULL, bound: the scanner PUSHes here
    previews: str = "tcp://127.0.0.1:5556"  # PUB, bound: topics rgb/elements/trust/status
    snapshot: str = "tcp://127.0.0.1:5557"  # ROUTER, bound: snapshot + status + control
    models: str = "models"  # folder holding one bundle folder per kind (rgb/elements/trust)
    recordings: str = "recordings"  # every accepted pixel lands here, one file per scan
    record: bool = True
    # serve a stream from an instrument the models were not trained for (SPEC.md 4.1), its
    # previews flagged foreign; off: such a scan is refused with the reason
    allow_foreign: bool = False
    # recording: "none" (fastest: 8 KiB per 4096-channel uint16 pixel), "lzf", "gzip"
    compression: str = "none"
    # messages queued here before the scanner's PUSH blocks (back-pressure); 200 x a 16-pixel
    # 4096-channel message is ~25 MB. ZeroMQ counts messages, not bytes, so the daemon lowers
    # the RCVHWM it sets to ingest_buffer_bytes // max_frame_bytes when that is smaller
    # (ingest_hwm below): 1 GiB // 256 MiB = 4 messages; 1 GiB // 4 MiB = 256
    rcvhwm: int = 200
    sndhwm: int = 100  # preview messages queued per subscriber before PUB drops them
    # larger ingest messages are received, then refused and counted as too_large
    max_message_bytes: int = 64 * 1024 * 1024
    # ZMQ_MAXMSGSIZE of the ingest socket: ZeroMQ drops the connection of a peer that sends a
    # larger frame, before buffering it; that frame is lost uncounted, and so may be what was
    # in flight behind it (measured: the next message), so the default is the protocol's own
    # limit (no conforming message is over it) and max_message_bytes is the counted limit
    max_frame_bytes: int = 256 * 1024 * 1024
    # memory ZeroMQ may hold for one peer's queued ingest: RCVHWM x max_frame_bytes stays
    # under it (plus the kernel's socket buffer, a few MiB, and the message being decoded:
    # its dense counts are at most 4096 pixels x 16384 channels x 4 B = 256 MiB)
    ingest_buffer_bytes: int = 1024 * 1024 * 1024
    # ZMQ_MAXMSGSIZE of the request (ROUTER) socket; requests are small maps. PUB takes only
    # subscriptions (SUBSCRIPTION_MAX_BYTES)
    request_max_bytes: int = 1024 * 1024
    # previews: a frame or region over max_preview_bytes goes out as tiles, a snapshot over
    # max_reply_bytes in parts (SPEC.md 4.4, 4.7); PUB's SNDHWM is lowered to
    # preview_buffer_bytes // max_preview_bytes (1 GiB // 16 MiB = 64 messages), so a stalled
    # subscriber holds at most that (ZeroMQ shares one message among its subscribers)
    max_preview_bytes: int = 16 * 1024 * 1024
    max_reply_bytes: int = 64 * 1024 * 1024
    preview_buffer_bytes: int = 1024 * 1024 * 1024
    # per-pixel memory an open scan may take: preview canvases (11 B + 4 B per element map)
    # and recording maps (10 B), 53 B a pixel with 8 maps: 2 GiB serves up to ~6,300 x 6,300
    # pixels (4096 x 4096: 0.83 GiB); a larger scan is refused at scan_start, with figures
    max_canvas_bytes: int = 2 * 1024 * 1024 * 1024
    # spectra per inference micro-batch: 256 measured ~8% more spectra/s end to end than 128
    # (ORT's threads and the per-batch flush amortise better), 512 no better
    max_batch: int = 256
    max_wait_ms: float = 0.5  # longest a spectrum waits for its batch to fill
    rate_hz: float = 10.0  # previews per topic per second
    full_every_s: float = 2.0  # a full frame per topic at least this often
    flush_every_s: float = 0.5  # recording flushed at least this often (rule: <= 1 s)
    # ... and as soon as this many pixels wait: small flushes (16 px ~0.2 ms) keep the 1 kHz
    # p99 low; at full speed a batch (256 px) is flushed whole anyway
    flush_pixels: int = 16
    # ORT intra-op threads per model. 2 on two cores: ~8% more spectra/s end to end than 1,
    # at 10-20% more CPU per spectrum (pool hand-offs); 1 where CPU is what runs out
    threads: int = 2
    status_every_s: float = 1.0
    # ZeroMQ CURVE on all three channels (edge/security.py), off when all three are "":
    # a folder made by `python -m edge keys DIR`, or its two parts given separately
    curve_keys: str = ""
    curve_server_key: str = ""  # the daemon's secret key file (server.key_secret)
    curve_clients: str = ""  # folder of the admitted clients' public keys (*.key)
    insecure: bool = False  # serve beyond loopback without CURVE (a trusted network only)

    def __post_init__(self) -> None:
        # code that builds a Config directly gets the same checks as a file or a flag
        for name, value in check(vars(self), "Config").items():
            setattr(self, name, value)
        for small, large, why in (
            ("max_message_bytes", "max_frame_bytes", "a message ZeroMQ lets through is counted"),
            ("max_frame_bytes", "ingest_buffer_bytes", "one frame must fit in the ingest memory"),
            ("max_preview_bytes", "max_reply_bytes", "a snapshot reply holds one tile at least"),
            ("max_preview_bytes", "preview_buffer_bytes", "one tile must fit in it"),
        ):
            if getattr(self, small) > getattr(self, large):
                raise ConfigError(f"settings: {small} ({getattr(self, small)}) must not exceed "
                                  f"{large} ({getattr(self, large)}): {why}")

    @property
    def ingest_hwm(self) -> int:
        """The RCVHWM set on the ingest socket: rcvhwm, lowered so that it times
        max_frame_bytes stays within ingest_buffer_bytes (ZeroMQ counts messages)."""
        return max(1, min(self.rcvhwm, self.ingest_buffer_bytes // self.max_frame_bytes))

    @property
    def preview_hwm(self) -> int:
        """The SNDHWM set on the preview socket: sndhwm, lowered so that it times
        max_preview_bytes stays within preview_buffer_bytes."""
        return max(1, min(self.sndhwm, self.preview_buffer_bytes // self.max_preview_bytes))

    @classmethod
    def from_file(cls, path: str | Path) -> dict:
        """The checked settings of a TOML (.toml) or JSON file, top level or its [edge] table."""
        path = Path(path)
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: "
                              f"{' '.join(str(e).split())}") from None
        data = data.get("edge", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: settings must be a table of key = value, "
                              f"got {type(data).__name__}")
        return check(data, str(path))


# (lowest, lowest allowed?) per numeric setting; ints are counts, floats rates and periods
LIMITS: dict[str, tuple[float, bool]] = {
    "rcvhwm": (1, True),  # 0 would mean "unbounded" to ZeroMQ: no back-pressure
    "sndhwm": (1, True),
    "max_message_bytes": (1, True),
    "max_frame_bytes": (1, True),
    "ingest_buffer_bytes": (1, True),
    "request_max_bytes": (1024, True),  # a snapshot request or control message fits
    "max_preview_bytes": (4096, True),  # a row piece of one pixel of 64 element maps fits
    "max_reply_bytes": (4096, True),
    "preview_buffer_bytes": (4096, True),
    "max_canvas_bytes": (1 << 20, True),
    "max_batch": (1, True),
    "flush_pixels": (1, True),
    "threads": (1, True),
    "max_wait_ms": (0.0, True),  # 0: run whatever has arrived at once
    "rate_hz": (0.0, False),
    "full_every_s": (0.0, False),
    "flush_every_s": (0.0, False),
    "status_every_s": (0.0, False),
}
ENDPOINT_FIELDS = ("ingest", "previews", "snapshot")
TYPE_NAMES = {"int": "an int", "float": "a float (or an int)", "str": "a str",
              "bool": "a bool (true or false)"}


def _typed(kind: str, value: Any) -> tuple[bool, Any]:
    """(value has type `kind`, value converted): bool is not an int, an int is a float."""
    if kind == "bool":
        return isinstance(value, bool), value
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    return isinstance(value, str), value


def check(values: dict[str, Any], source: str) -> dict[str, Any]:
    """`values` with ints widened to floats where a float is due; ConfigError on the first
    unknown key, wrong type or out-of-range value, naming the key and `source`."""
    kinds = {f.name: str(f.type) for f in fields(Config)}
    unknown = set(values) - set(kinds)
    if unknown:
        raise ConfigError(f"{source}: unknown settings {sorted(unknown)} "
                          f"(known: {', '.join(kinds)})")
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = kinds[name]
        ok, value = _typed(kind, value)
        if not ok:
            raise ConfigError(f"{source}: {name} must be {TYPE_NAMES[kind]}, "
                              f"got {value!r} ({type(value).__name__})")
        _check_range(name, value, source)
        out[name] = value
    return out


def _check_range(name: str, value: Any, source: str) -> None:
    bad = ""
    if name in LIMITS:
        low, inclusive = LIMITS[name]
        if isinstance(value, float) and not math.isfinite(value):
            bad = "must be finite"
        elif value < low or (value == low and not inclusive):
            bad = f"must be {'>=' if inclusive else '>'} {low:g}"
        elif name in UPPER and value > UPPER[name]:
            bad = f"must be <= {UPPER[name]} (the protocol's limit)"
    elif name == "compression" and value not in COMPRESSIONS:
        bad = f"must be one of {', '.join(COMPRESSIONS)}"
    elif name in ENDPOINT_FIELDS and "://" not in value:
        bad = "must be a ZeroMQ endpoint such as tcp://127.0.0.1:5555 or ipc:///tmp/edge-in"
    elif name in ("models", "recordings") and not value:
        bad = "must be a folder name"
    if bad:
        raise ConfigError(f"{source}: {name} {bad}, got {value!r}")


HELP = {
    "ingest": "PULL endpoint the daemon binds; the scanner PUSHes here",
    "previews": "PUB endpoint: topics rgb, elements, trust, status",
    "snapshot": "ROUTER endpoint: snapshot_request, control (reload_models)",
    "models": "folder with rgb/, elements/, trust/ bundle folders",
    "recordings": "folder for one HDF5 dataset file per scan",
    "record": "record every accepted pixel (default on)",
    "allow_foreign": "serve streams from instruments the models were not trained for, every "
                     "preview of those models flagged foreign (default off: refused)",
    "compression": "recording compression: none (fastest), lzf or gzip",
    "rcvhwm": "ingest high-water mark (messages): beyond it the scanner's PUSH blocks",
    "sndhwm": "preview high-water mark per subscriber: beyond it previews are dropped",
    "max_message_bytes": "larger ingest messages are refused and counted as too_large",
    "max_frame_bytes": "ZeroMQ drops a peer that sends a larger ingest frame (uncounted)",
    "ingest_buffer_bytes": "memory for one peer's queued ingest: RCVHWM is lowered to "
                           "ingest_buffer_bytes // max_frame_bytes when smaller",
    "request_max_bytes": "ZeroMQ drops a peer that sends a larger request",
    "max_preview_bytes": "a larger preview frame or region is sent as tiles",
    "max_reply_bytes": "a larger snapshot is sent in parts, each asked for",
    "preview_buffer_bytes": "memory for previews queued to subscribers: SNDHWM is lowered "
                            "to preview_buffer_bytes // max_preview_bytes when smaller",
    "max_canvas_bytes": "per-pixel memory a scan may take (canvases, recording maps); a "
                        "larger scan is refused at scan_start",
    "max_batch": "spectra per inference micro-batch",
    "max_wait_ms": "longest a spectrum waits for its micro-batch to fill",
    "rate_hz": "previews per topic per second",
    "full_every_s": "a full frame per topic at least this often",
    "flush_every_s": "recording flushed at least this often",
    "flush_pixels": "recording flushed as soon as this many pixels wait",
    "threads": "ONNX Runtime intra-op threads per model",
    "status_every_s": "status published this often",
    "curve_keys": "CURVE key folder from `python -m edge keys DIR` (server.key_secret and "
                  "clients/): only clients whose public key is in clients/ are admitted",
    "curve_server_key": "CURVE: the daemon's secret key file (overrides curve_keys')",
    "curve_clients": "CURVE: folder of admitted clients' public keys (overrides curve_keys')",
    "insecure": "allow endpoints beyond loopback without CURVE (trusted networks only)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="TOML or JSON file with these settings (top level or an [edge] "
                             "table); flags override it")
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                help=HELP[f.name])
        else:
            # a flag's type error is argparse's own one-line exit 2; its range is checked below
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, dest=f.name, type=kind, default=None,
                                choices=COMPRESSIONS if f.name == "compression" else None,
                                help=f"{HELP[f.name]} (default {f.default})")


def from_args(args: argparse.Namespace) -> Config:
    """Defaults < --config file < flags; ConfigError (one line) on any bad value."""
    values: dict = Config.from_file(args.config) if getattr(args, "config", None) else {}
    flags = {f.name: getattr(args, f.name) for f in fields(Config)
             if getattr(args, f.name, None) is not None}
    for name, value in flags.items():
        values.update(check({name: value}, f"command line (--{name.replace('_', '-')})"))
    return Config(**values)
