"""The Examples sections of the reference, the backend functions and the conformance kit run as
doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import diveq.reference
from diveq._ops import FUNCTIONS

MODULES = [f"diveq.reference.{m.name}" for m in pkgutil.iter_modules(diveq.reference.__path__)] + [
    "diveq.testing._check",
    "diveq._temperature",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest failures in {name}"


def test_the_reference_has_doctests():
    total = sum(
        doctest.testmod(importlib.import_module(n)).attempted
        for n in MODULES
        if n.startswith("diveq.reference")
    )
    assert total >= 10


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backend_function_examples(backend):
    """Each backend function's generated Examples section runs (the functions are built at
    import time, so doctest's module scan does not find them: they are run one by one)."""
    pytest.importorskip(backend)
    module = importlib.import_module(f"diveq.backends.{backend}")
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    finder = doctest.DocTestFinder()
    for op in FUNCTIONS:
        fn = getattr(module, op.name)
        for test in finder.find(fn, f"{module.__name__}.{op.name}", globs={}):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted >= 3 * len(FUNCTIONS)
