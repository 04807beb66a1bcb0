"""The layers are folders (scripts/import_graph.py): every import between parts points down, no
modules import each other in a circle, every import inside a function says why it is lazy, and
every package folder has its place in a layer. The checks are run on planted trees first, so a
checker that found nothing could not pass."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from paths import REPO

SCRIPT = REPO / "scripts" / "import_graph.py"


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def planted(tmp_path, monkeypatch, graph):
    """A tree with one of each fault: an upward import hidden in a function, a circle inside
    sweep/study, an unexplained lazy import, an explained one, and a folder in no layer."""
    files = {
        "core/__init__.py": "",
        "core/low.py": "def f():\n    from sweep.study import grid  # lazy: light command\n",
        "sweep/__init__.py": "",
        "sweep/study/__init__.py": "",
        "sweep/study/grid.py": "from sweep.study import paper\n",
        "sweep/study/paper.py": "from sweep.study import grid\n",
        "sweep/cli.py": ("def main():\n    import torch\n"
                         "    from sweep.study import grid  # lazy: optional dependency (none)\n"),
        "sweep/extra/__init__.py": "",
    }
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(graph, "ROOT", tmp_path)
    monkeypatch.setattr(graph, "PACKAGES", ("core", "sweep"))
    return graph


def test_a_planted_upward_import_inside_a_function_is_found(planted):
    assert planted.upward(planted.part_edges()) == {("core", "sweep.study"): {"sweep.study.grid"}}


def test_a_planted_circle_is_found(planted):
    assert planted.circles(planted.module_edges()) == [["sweep.study.grid", "sweep.study.paper"]]


def test_a_lazy_import_needs_its_reason(planted):
    unexplained = planted.unexplained_lazy()
    assert [(i.module, i.target) for i in unexplained] == [("sweep.cli", "torch")]


def test_a_folder_in_no_layer_is_found(planted):
    assert planted.unplaced_parts() == ["sweep.extra"]


def test_the_project_has_no_upward_import(graph):
    edges = graph.part_edges()
    assert not graph.upward(edges), f"imports against the layers: {graph.upward(edges)}"
    # the layers are really used: the application stands on all three packages below it
    assert {("sweep", "sweep.execution"), ("sweep.execution", "trainers"),
            ("trainers", "trainers.data"), ("evals", "core")} <= set(edges)


def test_the_project_has_no_circle(graph):
    assert graph.circles(graph.module_edges()) == []


def test_every_lazy_import_of_the_project_says_why(graph):
    unexplained = [f"{i.module}:{i.line} {i.target}" for i in graph.unexplained_lazy()]
    assert not unexplained, f"imports inside functions without '# lazy: <reason>': {unexplained}"


def test_every_package_folder_is_in_a_layer(graph):
    assert graph.unplaced_parts() == []
