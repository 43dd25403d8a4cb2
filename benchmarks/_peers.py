"""Loading the alternatives we compare with, when they are installed.

The official ``diveq`` 0.1.3 shares our import name, so the set-up of ``make test`` and
``make bench`` unpacks its wheel into ``benchmarks/_vendor/official`` and it is loaded from there
by path as ``diveq_official``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

VENDOR = Path(__file__).resolve().parent / "_vendor" / "official" / "diveq"


def load_official() -> ModuleType | None:
    """The official package as module ``diveq_official``, or ``None`` when not unpacked."""
    if "diveq_official" in sys.modules:
        return sys.modules["diveq_official"]
    init = VENDOR / "__init__.py"
    if not init.exists():
        return None
    spec = importlib.util.spec_from_file_location(
        "diveq_official", init, submodule_search_locations=[str(VENDOR)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["diveq_official"] = module
    spec.loader.exec_module(module)
    return module


def load_vqtorch() -> ModuleType | None:
    """``vector_quantize_pytorch``, or ``None`` when not installed."""
    try:
        return importlib.import_module("vector_quantize_pytorch")
    except ImportError:
        return None
