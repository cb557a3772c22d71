"""The examples in clusterkit's docstrings run, so they cannot drift from the code.

Modules are discovered when the tests are collected, so a module that moves or
is added is covered without editing this file. Only modules that hold at least
one runnable example (one not marked ``+SKIP``) get a case, and every case must
run at least one example: a case that ran nothing would pass without checking
anything.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clusterkit

FINDER = doctest.DocTestFinder()


def _all_modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(clusterkit.__path__, "clusterkit.")
        if not m.name.endswith("__main__")
    )


def _runnable_examples(name: str) -> int:
    """How many examples in module ``name`` doctest would run (those not marked ``+SKIP``)."""
    module = importlib.import_module(name)
    return sum(
        1
        for test in FINDER.find(module)
        for example in test.examples
        if not example.options.get(doctest.SKIP, False)
    )


ALL_MODULES = _all_modules()
MODULES_WITH_EXAMPLES = [name for name in ALL_MODULES if _runnable_examples(name) > 0]


def test_discovery_found_modules_with_examples():
    assert len(ALL_MODULES) > 1, f"walking clusterkit found only {ALL_MODULES}"
    assert MODULES_WITH_EXAMPLES, "no clusterkit module has a runnable docstring example"


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted > 0, f"no docstring example in {name} ran"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
