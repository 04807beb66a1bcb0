"""The project's import graph, read from the source (ast), checked against the layers its folders
form. A part is a package folder (core, trainers/data, trainers, evals, sweep/study, ...); the
layers below list them bottom first, and a part imports only parts of lower layers. Within a part
modules import each other freely, but never in a circle. An import inside a function is an edge
too, and it must say on its line why it cannot sit at the top of the file:
`# lazy: optional dependency`, `# lazy: Ray worker start-up`, or `# lazy: light command`
(a dry run, the report or the data command must not pay for torch, ray or pyarrow).
    python scripts/import_graph.py            # part -> part edges, circles, unexplained lazy imports
    python scripts/import_graph.py --modules  # module -> module edges
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "trainers", "evals", "sweep")
# Bottom first. Parts in one layer never import each other (the training side and the evals
# are siblings on the data side); `sweep` itself is its commands (rq1 ... report, finetune).
LAYERS = (
    ("core",),
    ("trainers.data",),
    ("trainers", "evals", "evals.tasks"),  # evals/tasks: lm-eval task files (loaded by path)
    ("sweep.study",),
    ("sweep.planning",),
    ("sweep.decision",),
    ("sweep.reporting",),
    ("sweep.execution",),
    ("sweep",),
)
LAZY_REASONS = ("optional dependency", "ray worker start-up", "light command")
LAZY_COMMENT = re.compile(r"#\s*lazy:\s*(?P<reason>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports: a project module, or a third-party top-level name
    line: int
    in_function: bool
    reason: str | None  # the `# lazy:` comment on its line, if any


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The package folder a module lives in (a package's __init__ is its own part)."""
    path = ROOT / Path(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


def layer_of(part: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if part in layer), None)


def _is_module(dotted: str) -> bool:
    path = ROOT / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level or not node.module:
        return []
    out = []
    for alias in node.names:  # `from pkg import mod` is an edge to pkg.mod when it is a module
        sub = f"{node.module}.{alias.name}"
        out.append(sub if sub.split(".")[0] in PACKAGES and _is_module(sub) else node.module)
    return out


def _function_nodes(tree: ast.AST) -> set[int]:
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
    return inside


def imports_of(path: Path) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, str(path))
    inside = _function_nodes(tree)
    here = module_name(path)
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        # the comment may sit on any line of a wrapped `from x import (...)`
        comment = next(filter(None, (LAZY_COMMENT.search(line)
                                     for line in lines[node.lineno - 1:node.end_lineno])), None)
        for target in dict.fromkeys(_targets(node)):
            out.append(Import(here, target, node.lineno, id(node) in inside,
                              comment.group("reason").strip() if comment else None))
    return out


def all_imports() -> list[Import]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out += imports_of(path)
    return out


def is_project(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


def module_edges(imports: list[Import] | None = None) -> dict[str, set[str]]:
    edges = defaultdict(set)
    for imp in imports if imports is not None else all_imports():
        if is_project(imp.target) and imp.target != imp.module:
            edges[imp.module].add(imp.target)
    return edges


def part_edges(imports: list[Import] | None = None) -> dict[tuple[str, str], set[str]]:
    """(from part, to part) -> the imported modules, for edges between different parts."""
    out = defaultdict(set)
    for here, targets in module_edges(imports).items():
        for target in targets:
            if part_of(here) != part_of(target):
                out[(part_of(here), part_of(target))].add(target)
    return out


def upward(edges: dict[tuple[str, str], set[str]]) -> dict[tuple[str, str], set[str]]:
    """Edges that do not point to a lower layer (or leave a part unplaced in LAYERS)."""
    bad = {}
    for (a, b), mods in edges.items():
        la, lb = layer_of(a), layer_of(b)
        if la is None or lb is None or lb >= la:
            bad[(a, b)] = mods
    return bad


def unplaced_parts() -> list[str]:
    """Package folders no layer names: a new folder must be placed before it is used."""
    parts = {module_name(p.parent / "__init__.py") for package in PACKAGES
             for p in (ROOT / package).rglob("__init__.py")}
    return sorted(p for p in parts if layer_of(p) is None)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of modules with more than one member (Tarjan), as a cycle."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def unexplained_lazy(imports: list[Import] | None = None) -> list[Import]:
    """Imports inside functions without a `# lazy:` comment naming an accepted reason."""
    return [imp for imp in (imports if imports is not None else all_imports())
            if imp.in_function and not (imp.reason and any(
                r in imp.reason.lower() for r in LAZY_REASONS))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modules", action="store_true", help="module-level edges")
    imports = all_imports()
    if p.parse_args().modules:
        for here, targets in sorted(module_edges(imports).items()):
            print(f"{here} -> {', '.join(sorted(targets))}")
        return 0
    edges = part_edges(imports)
    bad = upward(edges)
    for (a, b), mods in sorted(edges.items(), key=lambda e: (layer_of(e[0][0]) or 0, e[0])):
        names = ", ".join(sorted(m.rsplit(".", 1)[-1] for m in mods))
        print(f"{a:16s} -> {b:16s} {names}{'   <- UPWARD' if (a, b) in bad else ''}")
    problems = len(bad)
    for part in unplaced_parts():
        print(f"folder {part} is in no layer (scripts/import_graph.py LAYERS)")
        problems += 1
    for cycle in circles(module_edges(imports)):
        print(f"circle: {' <-> '.join(cycle)}")
        problems += 1
    for imp in unexplained_lazy(imports):
        print(f"{imp.module}:{imp.line}: import of {imp.target} inside a function without a "
              f"'# lazy: <reason>' comment ({' / '.join(LAZY_REASONS)})")
        problems += 1
    lazy = sum(i.in_function and is_project(i.target) for i in imports)
    print(f"{sum(is_project(i.target) for i in imports)} imports of the project's own modules, "
          f"{lazy} inside functions (each with its reason); {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
