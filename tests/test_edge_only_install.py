"""The edge installs alone: static guards of what `make smoke-edge` (.ci/edge_only.sh) runs.

The smoke test itself builds a venv and installs from the registry, so it runs in CI
(`.ci/run`) and by hand, not in the test suite; these checks keep it honest cheaply.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

from tests.edge_support import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> distribution name, for everything the edge may import
EDGE_IMPORTS = {"numpy": "numpy", "onnxruntime": "onnxruntime", "zmq": "pyzmq",
                "msgpack": "msgpack", "h5py": "h5py"}
TRAINING_ONLY = ("torch", "onnx", "scikit-learn", "skl2onnx", "scipy", "xraylib", "pymca5")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[=<>!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def _imports(path: Path) -> set[str]:
    """Top-level names of every import in a module, inside functions too (lazy imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_edge_and_proto_import_only_what_the_edge_extra_installs():
    installed = _names(PYPROJECT["project"]["dependencies"]) | _names(
        PYPROJECT["project"]["optional-dependencies"]["edge"])
    allowed = set(sys.stdlib_module_names) | {"edge", "proto"} | {
        mod for mod, dist in EDGE_IMPORTS.items() if dist in installed}
    view = ROOT / "edge" / "view"  # the live page: its own optional [view] extra (aiohttp)
    # `edge export-maps` alone imports tifffile, lazily, from its optional [maps] extra
    maps = {ROOT / "edge" / "export_maps.py": {"tifffile"} & _names(
        PYPROJECT["project"]["optional-dependencies"]["maps"])}
    stray = {
        f"{path.relative_to(ROOT)}: {name}"
        for pkg in ("edge", "proto")
        for path in sorted((ROOT / pkg).rglob("*.py"))
        if view not in path.parents
        for name in _imports(path) - allowed - maps.get(path, set())
    }
    assert not stray, f"edge/proto import packages the [edge] extra does not install: {stray}"
    assert not installed & set(TRAINING_ONLY)
    view_extra = _names(PYPROJECT["project"]["optional-dependencies"]["view"])
    assert not view_extra & set(TRAINING_ONLY)
    stray = {f"{path.relative_to(ROOT)}: {name}" for path in sorted(view.rglob("*.py"))
             for name in _imports(path) - allowed - ({"aiohttp"} & view_extra)}
    assert not stray, f"edge/view imports what [edge] + [view] do not install: {stray}"
    lazy = {p.name for p in view.rglob("*.py") if "aiohttp" in _imports(p)}
    assert lazy <= {"server.py"}, f"only edge/view/server.py may import aiohttp: {lazy}"


def test_console_scripts_point_at_existing_functions():
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["maxrf-edge"] == "edge.__main__:main"
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        path = ROOT / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{name}: no module {module} ({path.relative_to(ROOT)})"
        defined = {n.name for n in ast.parse(path.read_text()).body
                   if isinstance(n, ast.FunctionDef)}
        assert func in defined, f"{name}: {module} has no top-level {func}()"


def test_smoke_is_wired_into_ci_and_make():
    run = (ROOT / ".ci" / "run").read_text()
    assert run.index("make lint") < run.index("make test") < run.index("make smoke-edge")
    assert "set -euo pipefail" in run
    assert re.search(r"^smoke-edge: setup\n\tbash \.ci/edge_only\.sh$",
                     (ROOT / "Makefile").read_text(), re.M)
    assert ".venv-edge/" in (ROOT / ".gitignore").read_text().split()


def test_readme_documents_every_make_target():
    makefile = (ROOT / "Makefile").read_text()
    phony = " ".join(re.findall(r"^\.PHONY:((?:.*\\\n)*.*)$", makefile, re.M))
    targets = set(phony.replace("\\", " ").split()) - {"demo-models"}  # internal to demo
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", readme, re.M))
    assert documented == targets
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target
