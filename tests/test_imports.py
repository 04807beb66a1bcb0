"""Imports go one way (scripts/import_graph.py draws them): the library never imports the
application, evals never import the training side, the data side stands only on the base."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def _graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


def test_every_edge_between_parts_goes_the_allowed_way():
    graph = _graph()
    edges = graph.part_edges()
    bad = {edge: sorted(mods) for edge, mods in edges.items() if edge not in graph.ALLOWED}
    assert not bad, f"imports against the layering: {bad}"
    assert ("sweep", "trainers") in edges and ("trainers", "trainers.data") in edges


def test_the_graph_sees_imports_inside_functions(tmp_path, monkeypatch):
    """A lazy `from sweep import x` inside a library function is still an edge."""
    graph = _graph()
    (tmp_path / "trainers").mkdir()
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "grid.py").write_text("X = 1\n")
    (tmp_path / "trainers" / "late.py").write_text("def f():\n    from sweep import grid\n")
    monkeypatch.setattr(graph, "ROOT", tmp_path)
    assert graph.part_edges() == {("trainers", "sweep"): {"sweep.grid"}}
