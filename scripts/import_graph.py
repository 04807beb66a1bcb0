"""The project's import graph between its parts, read from the source (ast: imports inside
functions count too). Parts: sweep (the application), evals, trainers (the training side),
trainers.data (the data side) and trainers.base (what both sides stand on: model, storage,
identity, settings, content). Imports go one way: sweep -> evals -> trainers.data ->
trainers.base, and sweep -> trainers -> trainers.data; evals uses the model loader and the
data side, never the training side. Prints each edge with the modules behind it:
    python scripts/import_graph.py            # part -> part edges
    python scripts/import_graph.py --modules  # module -> module edges
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sweep", "evals", "trainers")
BASE = {"trainers.model", "trainers.storage", "trainers.s3_conditional", "trainers.identity",
        "trainers.settings", "trainers.content"}
ALLOWED = {("sweep", "evals"), ("sweep", "trainers"), ("sweep", "trainers.data"),
           ("sweep", "trainers.base"), ("evals", "trainers.data"), ("evals", "trainers.base"),
           ("trainers", "trainers.data"), ("trainers", "trainers.base"),
           ("trainers.data", "trainers.base")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Project modules `path` imports (`from pkg import mod` resolved to pkg.mod when it is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or \
                    (ROOT / Path(*sub.split("."))).is_dir()
                out.add(sub if is_module else node.module)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def part_of(module: str) -> str:
    if module.startswith("trainers.data"):
        return "trainers.data"
    if module in BASE:
        return "trainers.base"
    return module.split(".")[0]


def module_edges() -> dict[str, set[str]]:
    edges = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            here = module_name(path)
            edges[here] |= {m for m in imported_modules(path) if m != here}
    return edges


def part_edges() -> dict[tuple[str, str], set[str]]:
    """(from part, to part) -> the imported modules, for edges between different parts."""
    out = defaultdict(set)
    for here, targets in module_edges().items():
        for target in targets:
            if part_of(here) != part_of(target):
                out[(part_of(here), part_of(target))].add(target)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modules", action="store_true", help="module-level edges")
    if p.parse_args().modules:
        for here, targets in sorted(module_edges().items()):
            if targets:
                print(f"{here} -> {', '.join(sorted(targets))}")
        return
    for (a, b), mods in sorted(part_edges().items()):
        flag = "" if (a, b) in ALLOWED else "   <- NOT ALLOWED"
        names = ", ".join(sorted(m.rsplit(".", 1)[-1] for m in mods))
        print(f"{a:13s} -> {b:13s} {names}{flag}")


if __name__ == "__main__":
    main()
