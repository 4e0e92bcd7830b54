"""The daemon's numpy BLAS runs one thread: `python -m edge` pins it before numpy loads."""

import os
import subprocess
import sys

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

PROBE = ("import edge, numpy, threadpoolctl; "
         "print(max(p['num_threads'] for p in threadpoolctl.threadpool_info() "
         "if p['user_api'] == 'blas'))")


def _blas_threads(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    return int(out.stdout.strip())


def test_importing_edge_pins_blas_to_one_thread():
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    assert _blas_threads(env) == 1


def test_an_operators_setting_wins():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"
    assert _blas_threads(env) == 2
