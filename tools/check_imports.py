"""Fail when project modules import each other in a cycle, or a module outgrows its budget.

Every ``import`` of a ``quantsearch`` module counts, wherever it stands: at the top, inside a
function, or under ``TYPE_CHECKING`` (a deferred import hides a cycle from Python, not from a
reader). ``from quantsearch.a import b`` counts as importing ``quantsearch.a.b`` when ``b`` is a
module, else ``quantsearch.a``. Run by ``make lint``:

    python tools/check_imports.py src/quantsearch
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINES = 450


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, name: str, is_pkg: bool, modules: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [
                f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(root_arg: str) -> int:
    root = Path(root_arg)
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    graph = {}
    problems = []
    for name, path in files.items():
        text = path.read_text()
        graph[name] = imports(ast.parse(text), name, path.name == "__init__.py", modules)
        n = text.count("\n")
        if n > MAX_LINES:
            problems.append(f"{path}: {n} lines, over the budget of {MAX_LINES}")
    for comp in cycles(graph):
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
        problems.append("import cycle: " + "; ".join(edges))
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src/quantsearch"))
