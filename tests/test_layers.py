"""The library stays layered: no import cycle between its modules (imports inside functions
included: a cycle hidden in a function body is still a knot to read through), and imports
point down the layers ARCHITECTURE.md declares, whose list names every module and nothing that
does not exist."""

from __future__ import annotations

import ast
import re
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


ARCHITECTURE = PACKAGE.parents[1] / "ARCHITECTURE.md"


def layer_section() -> str:
    """ARCHITECTURE.md's "Layers, bottom to top" section."""
    return ARCHITECTURE.read_text().split("## Layers, bottom to top")[1].split("\n## ")[0]


def declared_layers() -> dict[str, int]:
    """module -> its layer number, from ARCHITECTURE.md's numbered "Layers" list (the first
    layer that names the module in backticks)."""
    items = re.split(r"^(\d)\. ", layer_section(), flags=re.MULTILINE)
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    layers: dict[str, int] = {}
    for number, body in zip(items[1::2], items[2::2], strict=True):
        for name in re.findall(r"`([a-z_0-9]+)`", body):
            if name in modules:
                layers.setdefault(name, int(number))
    return layers


def defined_names(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_every_module_has_a_declared_layer():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert sorted(modules - set(declared_layers())) == []


def upward_imports(graph: nx.DiGraph, layers: dict[str, int]) -> list[str]:
    return [
        f"{a} (layer {layers[a]}) imports {b} (layer {layers[b]})"
        for a, b in graph.edges
        if layers[b] > layers[a]
    ]


def test_imports_point_down_the_declared_layers():
    assert upward_imports(import_graph(), declared_layers()) == []


def test_the_layer_list_names_only_what_exists():
    """A backticked name in the layer list is a module, a name one defines, or `module.name`."""
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    defined = {m: defined_names(m) for m in modules}
    anywhere = set().union(*defined.values())
    missing = []
    for name in re.findall(r"`([A-Za-z_][A-Za-z_0-9.]*)`", layer_section()):
        module, _, attribute = name.rpartition(".")
        if module:
            if module not in modules or attribute not in defined[module]:
                missing.append(name)
        elif name not in modules and name not in anywhere:
            missing.append(name)
    assert missing == []


def test_the_layer_check_sees_an_upward_import():
    layers = declared_layers()
    assert layers["io"] == 1 and layers["report"] == 5
    graph = import_graph()
    assert ("report", "io") in graph.edges and not upward_imports(graph, layers)
    graph.add_edge("io", "report")
    assert upward_imports(graph, layers) == ["io (layer 1) imports report (layer 5)"]
