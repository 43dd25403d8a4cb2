"""The quickstart pages run as written: every doctest and code block, top to bottom."""

from __future__ import annotations

from pathlib import Path

import pytest
from _run_pages import blocks, run_page

QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "quickstart"
PAGES = {"reference.rst": [], "torch.rst": ["torch"], "jax.rst": ["jax", "optax"]}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_quickstart_page_runs(page):
    for module in PAGES[page]:
        pytest.importorskip(module)
    path = QUICKSTART / page
    assert blocks(path.read_text())
    failures = run_page(path)
    assert not failures, "\n".join(failures)


def test_no_page_calls_its_code_a_sketch():
    for path in QUICKSTART.glob("*.rst"):
        assert "not run" not in path.read_text(), f"{path.name}: every example runs now"
