"""Every Python block of ``docs/migration.rst`` runs, in order, as a reader would paste it.

Blocks that import the official package (``from diveq import ...``, a line of its own) run
against the official ``diveq`` 0.1.3, loaded by path (its import name is ours). Each claim of
the guide is an assertion in a block, so the guide cannot drift from what the packages do.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vector_quantize_pytorch")
torch.set_num_threads(1)  # small tensors: threads only contend

from _official import load_official  # noqa: E402

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "migration.rst"
DIRECTIVE = re.compile(r"^( *)\.\. code-block:: python\s*$")


def python_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block:: python`` directives, dedented, in order."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        found = DIRECTIVE.match(lines[i])
        i += 1
        if not found:
            continue
        indent, body = len(found.group(1)), []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def test_the_guide_blocks_run_in_order(tmp_path, monkeypatch):
    load_official()
    monkeypatch.chdir(tmp_path)  # the checkpoint example writes a file
    blocks = python_blocks(GUIDE.read_text())
    assert len(blocks) >= 20
    namespace: dict[str, object] = {}
    for n, block in enumerate(blocks):
        code = re.sub(r"^from diveq import ", "from diveq_official import ", block, flags=re.M)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the official classes' advice
            exec(compile(code, f"{GUIDE.name}, block {n + 1}", "exec"), namespace)
