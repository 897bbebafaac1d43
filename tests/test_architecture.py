"""The package's shape: no import circles (type-checking imports aside), small engine modules."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "pwcli"
ENGINE_MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(parts + ([node.module] if node.module else []))
        subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
        out.update(m for m in (subs or [target]) if m in modules and m != name)
    return out


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_engine_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "engine").glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > ENGINE_MAX_LINES} == {}
    assert {"session.py", "engine.py", "vm.py", "demux.py", "http.py", "tcp.py", "scheduler.py",
            "callouts.py", "run.py"} <= set(sizes)


def test_the_newer_packages_keep_modules_small_too() -> None:
    """The packages built after the engine keep one concept per module too (generated stubs
    aside)."""
    packages = ("traffic", "live", "html", "ui", "envoy", "serve")
    sizes = {f"{p.parent.name}/{p.name}": len(p.read_text().splitlines())
             for pkg in packages for p in (PACKAGE / pkg).glob("*.py") if "_pb2" not in p.name}
    assert {n: s for n, s in sizes.items() if s > ENGINE_MAX_LINES} == {}
    assert {"traffic/tcp.py", "traffic/http1.py", "traffic/har.py", "live/proxy.py",
            "envoy/driver.py",
            "serve/server.py"} <= set(sizes)
