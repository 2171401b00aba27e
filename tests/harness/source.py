"""The runtime's own source files, read as text, and the import graph between them.

Nothing here imports the runtime: the graph comes from ``ast``, so a module that fails to import,
or a cycle that Python happens to survive today, is still seen. Every ``import`` statement
counts, wherever it stands: under ``if TYPE_CHECKING:`` (mypy follows it, and a later edit
turns it into a real one) and inside functions (the usual way a cycle is hidden, not removed).

``isolators/``, ``images/`` and ``executors/`` sit beside ``agent_runtime/`` in the tree but are
installed as ``agent_runtime.isolators`` and so on (pyproject's ``package-dir``); a module that
still imports one of them by its top-level name is counted as importing the installed one.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = "agent_runtime"


@dataclass(frozen=True)
class Module:
    name: str  # the installed name: agent_runtime.isolators.cgroups_cpu
    path: Path
    is_package: bool  # an __init__.py

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _package_dirs() -> dict[str, Path]:
    """Installed package name -> its directory, from pyproject's setuptools section."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        setuptools = tomllib.load(handle)["tool"]["setuptools"]
    mapping: dict[str, str] = setuptools.get("package-dir", {})
    dirs: dict[str, Path] = {}
    for package in setuptools["packages"]:
        # A package's directory is its own mapping, else its parent's plus its last name.
        parts = package.split(".")
        for cut in range(len(parts), 0, -1):
            base = ".".join(parts[:cut])
            if base in mapping:
                dirs[package] = ROOT / mapping[base] / Path(*parts[cut:])
                break
        else:
            dirs[package] = ROOT / Path(*parts)
    return dirs


def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package, directory in _package_dirs().items():
        for path in sorted(directory.glob("*.py")):
            is_package = path.name == "__init__.py"
            name = package if is_package else f"{package}.{path.stem}"
            found[name] = Module(name, path, is_package)
    return found


def _installed(name: str) -> str:
    """``executors.command`` (a top-level import of a mapped directory) -> its installed name."""
    head = name.split(".")[0]
    if head in ("isolators", "images", "executors"):
        return f"{TOP}.{name}"
    return name


def _imported_names(module: Module, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            yield stem
            for alias in node.names:
                yield f"{stem}.{alias.name}"  # kept only when it names a module


def imports(module: Module, known: dict[str, Module]) -> set[str]:
    """The runtime modules ``module`` imports (``from pkg import name`` counts as importing
    ``pkg.name`` when that is a module, else ``pkg``)."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    names = {_installed(name) for name in _imported_names(module, tree)}
    return {name for name in names if name in known and name != module.name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(module, known) for name, module in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> ... -> a``) for each strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(root: str) -> None:
        # Tarjan's algorithm, iterative: the graph is deep enough to trouble the recursion limit.
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return [_a_cycle(graph, group) for group in groups]


def _a_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest way from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & group):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def line_count(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto packages: an edge where any module of one imports any of
    the other. A module of ``agent_runtime`` itself (``resources``, ``flags``) stands alone."""
    known = modules()

    def package_of(name: str) -> str:
        return known[name].package if known[name].package != TOP else name

    folded: dict[str, set[str]] = {}
    for name, targets in graph.items():
        edges = folded.setdefault(package_of(name), set())
        edges.update(package_of(target) for target in targets)
    for name, edges in folded.items():
        edges.discard(name)
    return folded
