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


def test_jax_backend_leaves_flax_and_equinox_out():
    """The Flax and Equinox modules are optional extras: the JAX backend never imports them;
    nor Pallas, which only the opt-in fused search (``chunk_size="fused"``) needs."""
    code = (
        "import sys, diveq.backends.jax, diveq.backends.flax\n"
        "lazy = ('flax', 'equinox', 'orbax', 'jax.experimental.pallas')\n"
        "bad = [m for m in lazy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_table_and_the_kit_work_without_frameworks():
    """The table of operations, the binding and the conformance kit need neither framework
    (an import hook makes every import of torch or jax fail, as if not installed)."""
    code = (
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in ('torch', 'jax', 'jaxlib'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Absent())\n"
        "import diveq._ops, diveq.core._bind, diveq.testing\n"
        "assert diveq.testing.OPS[0].core is diveq.core.nearest\n"
        "names = [a.name for a in diveq.testing.available_adapters()]\n"
        "assert names[0] == 'core-numpy' and 'torch' not in names, names\n"
        "diveq.testing.check_backend('diveq.core', dtypes=('float64',), max_examples=1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
