"""The dependency graph of ``annotation`` only points down: no import cycle among its modules, and the web
process starts without scikit-learn (which only the training worker needs)."""

from __future__ import annotations

import os
import subprocess
import sys

import grimp

from tests.conftest import REPO_ROOT


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself), Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(root: str) -> None:
        # Iterative, so a deep graph cannot hit the recursion limit.
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules)))
                    )
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or graph.direct_import_exists(importer=module, imported=module):
                    found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_among_annotation_modules():
    graph = grimp.build_graph("annotation", cache_dir=None)
    modules = {m for m in graph.modules if ".migrations" not in m}
    cycles = _cycles(graph, modules)
    details = [
        " -> ".join(graph.find_shortest_chain(importer=cycle[0], imported=cycle[1]) or cycle)
        for cycle in cycles
    ]
    assert not cycles, "import cycles among annotation modules:\n" + "\n".join(
        f"{cycle}: e.g. {detail}" for cycle, detail in zip(cycles, details)
    )


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    assert _cycles(graph, set(graph.modules)) == []
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph, set(graph.modules)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_web_start_up_does_not_import_scikit_learn_or_torch():
    code = (
        "import sys, django; django.setup(); import tagstudio.urls, tagstudio.wsgi; "
        "print(sorted(m for m in ('sklearn', 'torch', 'transformers', 'mlcore.training') if m in sys.modules))"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tagstudio.settings_test", PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
