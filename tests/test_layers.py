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


def modules() -> set[str]:
    """Every module of the library by its dotted name under `medistill` (`ner.distill`)."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if path.stem != "__init__"
    }


def import_graph() -> nx.DiGraph:
    """module -> the medistill modules it imports, anywhere in its body."""
    known = modules()
    graph = nx.DiGraph()
    for module in known:
        graph.add_node(module)
        path = PACKAGE / (module.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medistill"):
                target = node.module.removeprefix("medistill").removeprefix(".")
                if target in known:
                    graph.add_edge(module, target)
                else:  # `from medistill.PACKAGE import MODULE`
                    names = (f"{target}.{a.name}".lstrip(".") for a in node.names)
                    graph.add_edges_from((module, name) for name in names if name in known)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("medistill."):
                        graph.add_edge(module, alias.name.removeprefix("medistill."))
    graph.remove_edges_from(nx.selfloop_edges(graph))
    return graph


def test_no_import_cycle_in_the_library():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles[:10])


def test_the_graph_sees_imports_inside_functions():
    # data/tasks.py imports augment and loaders inside prepare_task only.
    edges = import_graph().edges
    assert ("data.tasks", "data.augment") in edges and ("data.tasks", "data.loaders") in edges


ARCHITECTURE = PACKAGE.parents[1] / "ARCHITECTURE.md"


def layer_section() -> str:
    """ARCHITECTURE.md's "Layers, bottom to top" section."""
    return ARCHITECTURE.read_text().split("## Layers, bottom to top")[1].split("\n## ")[0]


def declared_layers() -> dict[str, int]:
    """module -> its layer number, from ARCHITECTURE.md's numbered "Layers" list (the first
    layer that names the module in backticks)."""
    items = re.split(r"^(\d)\. ", layer_section(), flags=re.MULTILINE)
    known = modules()
    layers: dict[str, int] = {}
    for number, body in zip(items[1::2], items[2::2], strict=True):
        for name in re.findall(r"`([a-z_0-9.]+)`", body):
            if name in known:
                layers.setdefault(name, int(number))
    return layers


def defined_names(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / (module.replace(".", "/") + ".py")).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_every_module_has_a_declared_layer():
    assert sorted(modules() - set(declared_layers())) == []


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
    known = modules()
    defined = {m: defined_names(m) for m in known}
    anywhere = set().union(*defined.values())
    missing = []
    for name in re.findall(r"`([A-Za-z_][A-Za-z_0-9.]*)`", layer_section()):
        module, _, attribute = name.rpartition(".")
        if name in known:
            continue
        if module:
            if module not in known or attribute not in defined[module]:
                missing.append(name)
        elif name not in anywhere:
            missing.append(name)
    assert missing == []


def test_the_layer_check_sees_an_upward_import():
    layers = declared_layers()
    assert layers["core.io"] == 1 and layers["report.build"] == 5
    graph = import_graph()
    assert ("report.build", "core.io") in graph.edges and not upward_imports(graph, layers)
    graph.add_edge("core.io", "report.build")
    assert upward_imports(graph, layers) == ["core.io (layer 1) imports report.build (layer 5)"]
