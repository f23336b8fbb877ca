"""The library stays layered: no import cycle between its modules, imports inside functions
included (a cycle hidden in a function body is still a knot to read through)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "medistill"


def import_graph() -> nx.DiGraph:
    """module -> the medistill modules it imports, anywhere in its body."""
    graph = nx.DiGraph()
    for path in PACKAGE.glob("*.py"):
        module = path.stem
        graph.add_node(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medistill."):
                graph.add_edge(module, node.module.split(".")[1])
            elif isinstance(node, ast.ImportFrom) and node.module == "medistill":
                graph.add_edges_from((module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("medistill."):
                        graph.add_edge(module, alias.name.split(".")[1])
    graph.remove_edges_from(nx.selfloop_edges(graph))
    return graph


def test_no_import_cycle_in_the_library():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles[:10])


def test_the_graph_sees_imports_inside_functions():
    # tasks.py imports augment and loaders inside prepare_task only.
    edges = import_graph().edges
    assert ("tasks", "augment") in edges and ("tasks", "loaders") in edges
