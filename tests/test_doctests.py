"""The Examples sections of the reference (and the conformance kit) run as doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import diveq.reference

MODULES = [f"diveq.reference.{m.name}" for m in pkgutil.iter_modules(diveq.reference.__path__)] + [
    "diveq.testing._check"
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
