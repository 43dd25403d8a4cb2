"""Import hygiene: the framework-free parts never pull in torch or jax."""

from __future__ import annotations

import subprocess
import sys


def test_import_diveq_leaves_frameworks_out():
    code = (
        "import sys, diveq, diveq.core, diveq.reference, diveq.compat\n"
        "bad = [m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
