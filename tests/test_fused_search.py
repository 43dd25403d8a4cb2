"""The opt-in fused search kernels against the reference, in their interpreters.

Triton's interpreter must be switched on before Triton is first imported, so the torch kernels
run in one subprocess (``_triton_interpret.py``) that saves its results; the Pallas kernels run
here with ``chunk_size="fused-interpret"``. Both get the same inputs (:mod:`_kernel_cases`):
ties, partial tiles, a feature size that is not a power of two, float32 and float64, huge
magnitudes and no rows at all. No GPU runs here: ``benchmarks/device_check.py`` checks the
compiled kernels where there is one.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import _kernel_cases as cases
import numpy as np
import pytest

import diveq.reference as ref

HERE = Path(__file__).parent
NAMES = ("float32", "float64", "huge", "empty")


def _inputs(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(z, codebook, dither)`` rounded to the case's dtype, as float64, and that dtype."""
    z, c = cases.case()
    if name == "huge":
        z, c = z * cases.HUGE, c * cases.HUGE
    if name == "empty":
        z = z[:0]
    dtype = "float64" if name == "float64" else "float32"
    lam = cases.dither()
    z, c, lam = (a.astype(dtype).astype(np.float64) for a in (z, c, lam))
    return z, c, lam, dtype


def _check(results: dict[str, np.ndarray], name: str) -> None:
    z, c, lam, dtype = _inputs(name)
    got = {key.partition("/")[2]: val for key, val in results.items() if key.startswith(name)}
    scale = np.max(np.abs(c))
    tol = 1e-4 if dtype == "float32" else 1e-10

    k = ref.nearest(z, c)
    np.testing.assert_array_equal(got["nearest"], k)
    np.testing.assert_array_equal(got["quantize.indices"], k)
    np.testing.assert_array_equal(got["quantize.values"], c[k].astype(dtype))
    assert got["quantize.values"].dtype == dtype

    rows = cases.SF_ROWS
    sf = ref.sf_quantize(z[rows], c)
    np.testing.assert_array_equal(got["sf_quantize.indices"][rows], sf.indices)
    np.testing.assert_allclose(got["sf_quantize.weights"][rows], sf.weights, rtol=0, atol=tol)
    np.testing.assert_allclose(got["sf_quantize.values"][rows], sf.values, rtol=0, atol=tol * scale)
    assert got["sf_quantize.values"].dtype == got["sf_quantize.weights"].dtype == dtype

    picked = ref.sf_diveq(z, c, noise_std=0.0, dither=lam).indices
    np.testing.assert_array_equal(got["dithered"], picked)


def test_cases_hold_the_ties_they_claim():
    """The shared inputs do exercise first-index ties and the structural polyline tie."""
    z, c, _, _ = _inputs("float64")
    assert ref.nearest(z[:4], c).tolist() == [3, 3, 9, 9]
    sf = ref.sf_quantize(z[4:6], c)
    assert sf.indices.tolist() == [j - 1 for j in cases.CORNERS]  # the first of the two
    np.testing.assert_array_equal(sf.weights, [1.0, 1.0])


# -- torch: Triton's interpreter, in a subprocess ------------------------------------------------


def test_triton_kernels_in_the_interpreter(tmp_path, subtests):
    """One subprocess (one test, so ``pytest -n`` workers never run it twice): every case
    against the reference, then ``benchmarks/fused_check.py``'s torch logic at tiny sizes."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed (the `triton` extra)")
    pytest.importorskip("torch")
    out = tmp_path / "results.npz"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, str(HERE / "_triton_interpret.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    with np.load(out) as saved:
        results = dict(saved)
    for name in NAMES:
        with subtests.test(case=name):
            _check(results, name)
    with subtests.test(case="device_check dry run"):
        lines = done.stdout.splitlines()
        verdicts = [line for line in lines if line.startswith("torch cpu fused") or " vs " in line]
        assert len(verdicts) == 7 and all(line.endswith(" ok") for line in verdicts), verdicts
        table = [line for line in lines if line.startswith("N=64 K=70 D=5")]
        names = {line[25:53].strip() for line in table}  # the table's fixed-width case column
        assert {"fused kernel", "tiled search (default)", "fused sf_quantize"} <= names, table


def test_triton_needs_cuda_or_the_interpreter():
    pytest.importorskip("triton")
    torch = pytest.importorskip("torch")
    import diveq.backends.torch as dq
    from diveq.backends.torch._triton_search import interpreting

    if interpreting():
        pytest.skip("this process runs Triton's interpreter (TRITON_INTERPRET=1)")
    z, c = torch.zeros(3, 2), torch.ones(4, 2)
    with pytest.raises(RuntimeError, match="needs a CUDA tensor; `z` is on cpu"):
        dq.nearest(z, c, chunk_size="fused")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        dq.sf_quantize(z, c, chunk_size="fused-interpret")


# -- JAX: Pallas's interpreter ---------------------------------------------------------------------


def _pallas_results() -> dict[str, np.ndarray]:
    import jax.numpy as jnp

    import diveq.backends.jax as dq
    from diveq.backends.jax._pallas_search import KERNELS
    from diveq.core import _fused

    results: dict[str, np.ndarray] = {}
    mode = "fused-interpret"
    for name in NAMES:
        z, c, lam, dtype = _inputs(name)
        z, c, lam = (jnp.asarray(a, dtype=dtype) for a in (z, c, lam))
        results[f"{name}/nearest"] = np.asarray(dq.nearest(z, c, chunk_size=mode))
        q = dq.quantize(z, c, chunk_size=mode)
        results[f"{name}/quantize.values"] = np.asarray(q.values)
        results[f"{name}/quantize.indices"] = np.asarray(q.indices)
        sf = dq.sf_quantize(z, c, chunk_size=mode)
        for field in sf._fields:
            results[f"{name}/sf_quantize.{field}"] = np.asarray(getattr(sf, field))
        results[f"{name}/dithered"] = np.asarray(_fused.dithered_nearest(KERNELS, z, c, lam, mode))
    return results


def test_pallas_kernels_in_the_interpreter(subtests, capsys, monkeypatch):
    """Every case against the reference, then ``benchmarks/fused_check.py``'s JAX logic at
    tiny sizes (on the shapes just compiled; one test, so ``pytest -n`` compiles them once)."""
    pytest.importorskip("jax")
    pytest.importorskip("jax.experimental.pallas")
    results = _pallas_results()
    for name in NAMES:
        with subtests.test(case=name):
            _check(results, name)
    with subtests.test(case="device_check dry run"):
        monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts the repository first
        spec = importlib.util.spec_from_file_location(
            "fused_check", HERE.parent / "benchmarks" / "fused_check.py"
        )
        assert spec is not None and spec.loader is not None
        fused_check = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fused_check)
        capsys.readouterr()
        fused_check.jax_conformance("fused-interpret", fused_check.DRY_SHAPES)
        verdicts = capsys.readouterr().out.splitlines()
        assert len(verdicts) == 4 and all(line.endswith(" ok") for line in verdicts), verdicts


def test_pallas_under_jit_and_without_an_accelerator():
    jax = pytest.importorskip("jax")
    import diveq.backends.jax as dq

    z, c, _, _ = _inputs("float32")
    zj, cj = jax.numpy.asarray(z, dtype="float32"), jax.numpy.asarray(c, dtype="float32")
    jitted = jax.jit(lambda a, b: dq.nearest(a, b, chunk_size="fused-interpret"))
    np.testing.assert_array_equal(np.asarray(jitted(zj, cj)), ref.nearest(z, c))
    if jax.default_backend() == "cpu":
        with pytest.raises(RuntimeError, match="needs a GPU or TPU"):
            dq.nearest(zj, cj, chunk_size="fused")


# -- routing, both backends ----------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_only_the_searches_take_the_fused_modes(framework):
    pytest.importorskip(framework)
    import importlib

    dq = importlib.import_module(f"diveq.backends.{framework}")
    xp = importlib.import_module("torch" if framework == "torch" else "jax.numpy")
    z, c = xp.zeros((3, 2)), xp.ones((4, 2))
    with pytest.raises(ValueError, match="supported by nearest, quantize, sf_quantize only"):
        dq.sf_diveq(z, c, noise_std=0.0, dither=xp.zeros((3,)), chunk_size="fused")
    with pytest.raises(ValueError, match=r"`chunk_size` must be None, a positive int or one of"):
        dq.nearest(z, c, chunk_size="fast")
