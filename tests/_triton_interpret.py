"""Run the torch backend's fused search (``chunk_size="fused"``) in Triton's interpreter on the
cases of :mod:`_kernel_cases` and save the results: ``python _triton_interpret.py OUT.npz``;
then run the torch half of ``benchmarks/fused_check.py`` at its dry-run sizes (printed).

``tests/test_fused_search.py`` starts this in a subprocess with ``TRITON_INTERPRET=1``, which
Triton reads once, when it is first imported; the test process keeps compiled-mode Triton.
"""

from __future__ import annotations

import sys
from pathlib import Path

import _kernel_cases as cases
import numpy as np
import torch

import diveq.backends.torch as dq
from diveq.backends.torch._triton_search import KERNELS, interpreting
from diveq.core import _fused


def run(out: str) -> None:
    """Save every kernel output of every case (float32 and float64) to ``out``."""
    if not interpreting():
        raise SystemExit("TRITON_INTERPRET=1 must be set before Triton is imported")
    z, c = cases.case()
    lam = torch.tensor(cases.dither())
    results: dict[str, np.ndarray] = {}
    inputs = {
        "float32": (z, c),
        "float64": (z, c),
        "huge": (z * cases.HUGE, c * cases.HUGE),
        "empty": (z[:0], c),
    }
    for name, (zn, cn) in inputs.items():
        dtype = torch.float64 if name == "float64" else torch.float32
        zt, ct = torch.tensor(zn, dtype=dtype), torch.tensor(cn, dtype=dtype)
        results[f"{name}/nearest"] = dq.nearest(zt, ct, chunk_size="fused").numpy()
        q = dq.quantize(zt, ct, chunk_size="fused-interpret")
        results[f"{name}/quantize.values"] = q.values.numpy()
        results[f"{name}/quantize.indices"] = q.indices.numpy()
        sf = dq.sf_quantize(zt, ct, chunk_size="fused")
        for field in sf._fields:
            results[f"{name}/sf_quantize.{field}"] = getattr(sf, field).numpy()
        picked = _fused.dithered_nearest(KERNELS, zt, ct, lam.to(dtype))
        results[f"{name}/dithered"] = picked.numpy()
    np.savez(out, **results)


def device_check_dry_run() -> None:
    """The torch half of the GPU script's logic, on the CPU (its timings mean nothing)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import fused_check

    fused_check.torch_conformance("cpu", "fused", fused_check.DRY_SHAPES)
    fused_check.timings("cpu", "fused", fused_check.DRY_SIZES, reps=1)


if __name__ == "__main__":
    run(sys.argv[1])
    device_check_dry_run()
