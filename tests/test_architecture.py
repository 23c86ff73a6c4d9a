"""The package's structure, checked from its source with the AST (docs/architecture.md).

The layer contract itself is import-linter's (``lint-imports``, run by ``make test``); these tests add
what a layers contract does not cover: no cycle between any two modules, no dynamic import, nothing
importing the notebook layer, and small files and functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "recsys_utils"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 80


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _imports(name: str) -> set[str]:
    """Package modules imported by ``name`` (function-level imports included)."""
    is_package = MODULES[name].name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(TREES[name]):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
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
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_between_modules():
    assert _cycles(GRAPH) == []


def test_no_cycle_between_parts():
    parts: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        part = name.split(".")[1] if "." in name else "(root)"
        for target in targets:
            other = target.split(".")[1] if "." in target else "(root)"
            if other not in (part, "(root)"):
                parts.setdefault(part, set()).add(other)
    parts = {p: parts.get(p, set()) for p in {n.split(".")[1] for n in MODULES if "." in n} | set(parts)}
    assert _cycles(parts) == []


def test_nothing_imports_the_notebook_layer():
    course = "recsys_utils.course"
    offenders = [name for name, targets in GRAPH.items()
                 if not name.startswith(course) and any(t.startswith(course) for t in targets)]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_dynamic_import(name):
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert called not in ("import_module", "__import__"), f"{name}:{node.lineno} imports dynamically"


def test_small_files_and_functions():
    long_files = {name: n for name, path in MODULES.items()
                  if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    long_functions = [f"{name}:{node.lineno} {node.name}" for name, tree in TREES.items() for node in ast.walk(tree)
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long_files == {} and long_functions == []


def test_the_module_map_in_contributing_lists_every_module():
    import sys

    sys.path.insert(0, str(PACKAGE.parent / "scripts"))
    from module_map import BEGIN, END, table

    text = (PACKAGE.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    current = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    assert current == table(), "CONTRIBUTING.md's module map is out of date: run python scripts/module_map.py"
