"""Daemon settings: plain values, from flags and an optional TOML or JSON file.

Flags override the file, the file overrides the defaults. Every endpoint is on
loopback by default so nothing is exposed off the box unless asked for.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass
class Config:
    ingest: str = "tcp://127.0.0.1:5555"  # PULL, bound: the scanner PUSHes here
    previews: str = "tcp://127.0.0.1:5556"  # PUB, bound: topics rgb/elements/trust/status
    snapshot: str = "tcp://127.0.0.1:5557"  # ROUTER, bound: snapshot + status + control
    models: str = "models"  # folder holding one bundle folder per kind (rgb/elements/trust)
    recordings: str = "recordings"  # every accepted pixel lands here, one file per scan
    record: bool = True
    # recording: "none" (fastest: 8 KiB per 4096-channel uint16 pixel), "lzf", "gzip"
    compression: str = "none"
    # messages queued here before the scanner's PUSH blocks (back-pressure); 200 x a 16-pixel
    # 4096-channel message is ~25 MB: memory stays bounded whatever the scanner sends
    rcvhwm: int = 200
    sndhwm: int = 100  # preview messages queued per subscriber before PUB drops them
    max_message_bytes: int = 64 * 1024 * 1024
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

    @classmethod
    def from_file(cls, path: str | Path) -> dict:
        path = Path(path)
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        data = data.get("edge", data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        return data


HELP = {
    "ingest": "PULL endpoint the daemon binds; the scanner PUSHes here",
    "previews": "PUB endpoint: topics rgb, elements, trust, status",
    "snapshot": "ROUTER endpoint: snapshot_request, control (reload_models)",
    "models": "folder with rgb/, elements/, trust/ bundle folders",
    "recordings": "folder for one HDF5 dataset file per scan",
    "record": "record every accepted pixel (default on)",
    "compression": "recording compression: none (fastest), lzf or gzip",
    "rcvhwm": "ingest high-water mark (messages): beyond it the scanner's PUSH blocks",
    "sndhwm": "preview high-water mark per subscriber: beyond it previews are dropped",
    "max_message_bytes": "larger ingest messages are rejected as too_large",
    "max_batch": "spectra per inference micro-batch",
    "max_wait_ms": "longest a spectrum waits for its micro-batch to fill",
    "rate_hz": "previews per topic per second",
    "full_every_s": "a full frame per topic at least this often",
    "flush_every_s": "recording flushed at least this often",
    "flush_pixels": "recording flushed as soon as this many pixels wait",
    "threads": "ONNX Runtime intra-op threads per model",
    "status_every_s": "status published this often",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML or JSON file with these settings")
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                help=HELP.get(f.name))
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, dest=f.name, type=kind, default=None,
                                help=f"{HELP.get(f.name, '')} (default {f.default})")


def from_args(args: argparse.Namespace) -> Config:
    values: dict = Config.from_file(args.config) if getattr(args, "config", None) else {}
    for f in fields(Config):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return Config(**values)
