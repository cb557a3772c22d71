"""The layered house, checked: no import loop, small modules and functions, backend names in one place.

import-linter's layers contract (``make lint``) catches an import that runs up
the layers; it does not catch a loop inside one layer, so the loops are found
here, over grimp's graph (imports inside functions count: they hide a loop, they
do not remove it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: Where a quoted backend name may stand: the backends, their image inputs, the seed faces, the
#: fixtures (named after backends) and the data table's rows.
NAMES_MAY_STAND = ("clusterkit/backends/", "clusterkit/images/", "clusterkit/testing/")
NAMES_MAY_STAND_FILES = ("clusterkit/dask.py", "clusterkit/spark.py")
MAX_NAME_LINES_ELSEWHERE = 5


def loops(package: str) -> list[list[str]]:
    """The strongly connected components of ``package``'s import graph with more than one module."""
    graph = grimp.build_graph(package, cache_dir=None)
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # Tarjan, iteratively: no recursion limit on a big graph
        nonlocal counter
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.find_modules_directly_imported_by(succ)))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_the_loop_finder_finds_a_loop():
    graph_loops = loops("clusterkit")
    assert isinstance(graph_loops, list)
    # A loop the finder must see: a fake edge back up from the foundation to the front door.
    graph = grimp.build_graph("clusterkit", cache_dir=None)
    graph.add_import(importer="clusterkit.errors", imported="clusterkit.cluster")
    assert graph.find_shortest_chain(importer="clusterkit.cluster", imported="clusterkit.errors")


@pytest.mark.parametrize("package", ["clusterkit", "benchmarks"])
def test_no_import_loops(package):
    assert loops(package) == [], f"import loops in {package} (function-level imports count)"


def _python_files() -> list[Path]:
    return sorted((ROOT / "clusterkit").rglob("*.py"))


def test_modules_and_functions_are_small():
    too_big = []
    for path in _python_files():
        source = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        if source.count("\n") > MAX_MODULE_LINES:
            too_big.append(f"{rel}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert too_big == [], f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function"


def test_backend_names_are_spelled_in_one_place():
    from clusterkit.facts import BACKENDS

    quoted = re.compile(r"""["']({})["']""".format("|".join(BACKENDS)))
    found = []
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(NAMES_MAY_STAND) or rel in NAMES_MAY_STAND_FILES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if quoted.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert len(found) <= MAX_NAME_LINES_ELSEWHERE, "\n".join(found)
