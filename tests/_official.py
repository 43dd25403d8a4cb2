"""The official ``diveq`` 0.1.3 package, loaded by path (it shares our import name).

``make test``'s set-up downloads its wheel and unpacks it into ``benchmarks/_vendor/official``;
without it the tests that need it skip, saying so.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchmarks" / "_vendor" / "official" / "diveq"
NAME = "diveq_official"


def load_official() -> ModuleType:
    """The official package as the module ``diveq_official`` (skips the test when absent)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    init = PACKAGE / "__init__.py"
    if not init.exists():
        pytest.skip(f"official diveq 0.1.3 is not unpacked in {PACKAGE.parent} (make test does it)")
    spec = importlib.util.spec_from_file_location(
        NAME, init, submodule_search_locations=[str(PACKAGE)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module
