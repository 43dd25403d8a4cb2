"""The Flax and Equinox quickstart pages run: every ``code-block:: python`` of a page, in order,
in one namespace, as a user would paste them (as ``test_readme.py`` does for the README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "quickstart"
BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", flags=re.M)


def blocks(page: str) -> list[str]:
    text = (QUICKSTART / page).read_text()
    return [re.sub(r"^   ", "", b, flags=re.M) for b in BLOCK.findall(text)]


@pytest.mark.parametrize(
    ("page", "needs"), [("flax.rst", "flax"), ("equinox.rst", "equinox")], ids=["flax", "equinox"]
)
def test_quickstart_blocks_run(page, needs):
    pytest.importorskip(needs)
    pytest.importorskip("orbax.checkpoint")
    found = blocks(page)
    assert len(found) >= 3
    namespace: dict[str, object] = {}
    for block in found:
        exec(compile(block, str(QUICKSTART / page), "exec"), namespace)
