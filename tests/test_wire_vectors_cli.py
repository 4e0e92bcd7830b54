"""`python -m tools.vectors`: a real command line that refuses what it does not know."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def vectors(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tools.vectors", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("--bogus",), ("junk",), ("--out", "out", "--frobnicate")])
def test_unknown_flags_and_stray_arguments_are_refused_and_write_nothing(tmp_path, args):
    result = vectors(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "error" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_prints_usage_and_writes_nothing(tmp_path):
    result = vectors("--help", cwd=tmp_path)
    assert result.returncode == 0 and "--check" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_check_passes_on_the_committed_vectors_and_fails_on_a_stale_folder(tmp_path):
    assert vectors("--check", cwd=tmp_path).returncode == 0
    assert vectors("--out", "fresh", cwd=tmp_path).returncode == 0
    stale = tmp_path / "fresh" / "valid" / "status_idle.json"
    stale.write_text("{}\n")
    result = vectors("--out", "fresh", "--check", cwd=tmp_path)
    assert result.returncode == 1 and "status_idle.json" in result.stdout
    assert stale.read_text() == "{}\n"  # --check writes nothing
