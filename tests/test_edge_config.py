"""Daemon settings: every value type- and range-checked on load, one line on the CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge import config
from edge.__main__ import build_parser
from edge.config import Config, ConfigError
from tests.edge_support import ROOT


def load(tmp_path: Path, text: str, suffix: str = ".toml") -> Config:
    f = tmp_path / f"edge{suffix}"
    f.write_text(text)
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_args(parser.parse_args(["--config", str(f)]))


# (TOML line, key, expected type as named in the message, the value as repr'd)
TYPE_ERRORS = [
    ('max_batch = "256"', "max_batch", "an int", "'256' (str)"),
    ("max_batch = true", "max_batch", "an int", "True (bool)"),  # bool is not an int here
    ("max_batch = 2.5", "max_batch", "an int", "2.5 (float)"),
    ("threads = [2]", "threads", "an int", "[2] (list)"),
    ('rate_hz = "10"', "rate_hz", "a float", "'10' (str)"),
    ("rate_hz = false", "rate_hz", "a float", "False (bool)"),
    ("models = 3", "models", "a str", "3 (int)"),
    ("ingest = { port = 5555 }", "ingest", "a str", "{'port': 5555} (dict)"),
    ("record = 1", "record", "a bool", "1 (int)"),
    ('record = "false"', "record", "a bool", "'false' (str)"),
]


@pytest.mark.parametrize(("line", "key", "expected", "got"), TYPE_ERRORS)
def test_wrong_type_names_key_file_type_and_value(tmp_path, line, key, expected, got):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, f"[edge]\n{line}\n")
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "edge.toml") in msg
    assert f"{key} must be {expected}" in msg
    assert msg.endswith(f"got {got}")


def test_json_types_are_checked_too(tmp_path):
    with pytest.raises(ConfigError, match=r"edge\.json: flush_pixels must be an int, got '16'"):
        load(tmp_path, json.dumps({"edge": {"flush_pixels": "16"}}), ".json")


def test_float_accepts_int_and_values_load(tmp_path):
    cfg = load(tmp_path, "rate_hz = 4\nmax_wait_ms = 0\nmax_batch = 64\nrecord = false\n"
                         'compression = "lzf"\ningest = "ipc:///tmp/x"\n')
    assert cfg.rate_hz == 4.0 and isinstance(cfg.rate_hz, float)
    assert cfg.max_wait_ms == 0.0 and cfg.max_batch == 64 and cfg.record is False
    assert cfg.compression == "lzf" and cfg.ingest == "ipc:///tmp/x"


@pytest.mark.parametrize(("line", "why"), [
    ("max_batch = 0", "max_batch must be >= 1, got 0"),
    ("threads = -1", "threads must be >= 1"),
    ("rcvhwm = 0", "rcvhwm must be >= 1"),  # 0 is unbounded to ZeroMQ: no back-pressure
    ("flush_pixels = 0", "flush_pixels must be >= 1"),
    ("rate_hz = 0", "rate_hz must be > 0"),
    ("flush_every_s = -0.5", "flush_every_s must be > 0"),
    ("status_every_s = inf", "status_every_s must be finite"),
    ("full_every_s = nan", "full_every_s must be finite"),
    ("max_wait_ms = -1", "max_wait_ms must be >= 0"),
    ('compression = "zip"', "compression must be one of none, lzf, gzip"),
    ('ingest = "127.0.0.1:5555"', "ingest must be a ZeroMQ endpoint"),
    ('models = ""', "models must be a folder name"),
])
def test_out_of_range(tmp_path, line, why):
    with pytest.raises(ConfigError, match=why):
        load(tmp_path, line + "\n")


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        Config.from_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "max_batch = \n")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load(tmp_path, "{max_batch: 1}", ".json")
    with pytest.raises(ConfigError, match="must be a table"):
        load(tmp_path, "[1, 2]", ".json")
    with pytest.raises(ConfigError, match=r"unknown settings \['max_btach'\]"):
        load(tmp_path, "max_btach = 1\n")


def test_code_and_flags_get_the_same_checks():
    with pytest.raises(ConfigError, match="Config: max_batch must be an int, got '256'"):
        Config(max_batch="256")  # type: ignore[arg-type]
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    with pytest.raises(ConfigError, match=r"command line \(--max-batch\): max_batch must be"):
        config.from_args(parser.parse_args(["--max-batch", "0"]))


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_one_line_and_exits_2(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text('[edge]\nmax_batch = "256"\n')
    for args in (["--config", str(bad)], ["--rate-hz", "0"], ["--config", str(bad) + ".x"]):
        r = serve(*args)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("python -m edge serve: error: "), lines
    assert "max_batch must be an int, got '256' (str)" in serve("--config", str(bad)).stderr


def test_every_cli_flag_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"serve", "replay", "watch", "status", "reload", "keys",
                                       "view", "export-maps"}
    missing = [
        f"{name} {a.option_strings or a.dest}"
        for name, sub in subparsers.choices.items()
        for a in sub._actions
        if not isinstance(a, argparse._HelpAction) and not a.help
    ]
    assert missing == []
    assert set(config.HELP) == {f.name for f in config.fields(Config)}


def test_edge_serves_proto_kinds():
    from edge import inference
    from proto import bundle

    assert inference.KINDS is bundle.KINDS
