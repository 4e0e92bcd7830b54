"""The layer rules of the architecture, checked on the real import graph."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Makes `import torch` (and friends) fail, as on an edge box without them.
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(f'{{name}} is not available at the edge')
sys.meta_path.insert(0, Block())
"""


def run_blocked(code: str, blocked: set[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=blocked) + code],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def test_blocker_really_blocks_torch() -> None:
    result = run_blocked("import torch", {"torch"})
    assert result.returncode != 0 and "not available at the edge" in result.stderr


def test_edge_and_proto_import_without_torch() -> None:
    code = (
        "import edge, proto, pkgutil, importlib\n"
        "for pkg in (edge, proto):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print('ok')"
    )
    result = run_blocked(code, {"torch", "sklearn", "skl2onnx", "training", "export"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_proto_needs_neither_onnx_nor_zmq() -> None:
    code = (
        "import proto, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(proto.__path__, 'proto.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    blocked = {"torch", "onnx", "onnxruntime", "zmq", "edge", "training", "export"}
    result = run_blocked(code, blocked)
    assert result.returncode == 0, result.stderr
