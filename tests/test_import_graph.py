"""The layers of the architecture on the static import graph (every import statement,
late ones inside functions included), read with ast: nothing is imported, so the
torch-heavy modules cost nothing here. tests/test_layering.py checks the same rules
at run time, with torch made unimportable."""

from __future__ import annotations

import ast
import pkgutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("proto", "edge", "training", "export", "tools", "archive")
OURS = {*PACKAGES, "bench", "scripts", "tests"}  # top-level names that are this repo's
ALLOWED = {  # package -> the packages of ours it may import
    "proto": {"proto"},
    "edge": {"edge", "proto"},
    "training": {"training", "proto"},
    "export": {"export", "training", "proto"},
    "tools": {"tools", "proto"},
    "archive": {"archive", "training", "edge", "proto"},  # the top layer: nothing imports it
}


def walk(package: str) -> Iterator[tuple[str, Path]]:
    """(module name, file) of a package and everything below it, without importing any
    (`pkgutil.walk_packages` would import every package to look inside it)."""
    folder = ROOT.joinpath(*package.split("."))
    yield package, folder / "__init__.py"
    for info in pkgutil.iter_modules([str(folder)]):
        name = f"{package}.{info.name}"
        if info.ispkg:
            yield from walk(name)
        else:
            yield name, folder / f"{info.name}.py"


@cache
def modules() -> dict[str, Path]:
    return {name: path for package in PACKAGES for name, path in walk(package)}


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """Import statements under `if TYPE_CHECKING:`: never run, so never a runtime cycle."""
    return {node for block in ast.walk(tree) if isinstance(block, ast.If)
            and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for stmt in block.body for node in ast.walk(stmt)}


def imported(name: str, path: Path, runtime_only: bool = False) -> set[str]:
    """The modules of ours a module imports (a package's `__init__` for a name that is not
    a module of it), from every import statement in the file (`runtime_only`: not those
    under `if TYPE_CHECKING:`)."""
    known = modules()

    def resolve(target: str) -> str:
        parts = target.split(".")
        while len(parts) > 1 and ".".join(parts) not in known:
            parts.pop()
        return ".".join(parts)

    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skipped = type_checking_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else resolve(base))
    return {t for t in found if t.split(".")[0] in OURS and t != name}


@cache
def graph(runtime_only: bool = False) -> dict[str, set[str]]:
    return {name: imported(name, path, runtime_only) for name, path in modules().items()}


def test_every_package_is_found_and_parsed() -> None:
    found = {name.split(".")[0] for name in modules()}
    assert found == set(PACKAGES)
    assert {"proto.wire", "edge.daemon", "training.train", "export.bundles"} <= set(modules())


@pytest.mark.parametrize("package", PACKAGES)
def test_layering(package: str) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items() if name.split(".")[0] == package
        for target in targets if target.split(".")[0] not in ALLOWED[package]
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    """Strongly connected components of the module graph as it runs (Tarjan): all of size
    one. Layering counts type-only imports too; a cycle through one never executes."""
    g = graph(runtime_only=True)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~150)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in g:
                continue  # of ours, but outside the walked packages (bench, tests ...)
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_parser_resolves_every_kind_of_import(tmp_path: Path) -> None:
    path = tmp_path / "fake.py"
    path.write_text(
        "import numpy\nimport edge.daemon\nfrom proto import wire, PROTOCOL\n"
        "from . import bundles\nfrom .graph import graph_for\n"
        "def late():\n    from training.train import main\n"
        "if TYPE_CHECKING:\n    from training.lab import Lab\n"
    )
    assert imported("export.fake", path) == {
        "edge.daemon", "proto.wire", "proto", "export.bundles", "export.graph", "training.train",
        "training.lab",
    }
    assert "training.lab" not in imported("export.fake", path, runtime_only=True)
