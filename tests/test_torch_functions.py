"""torch backend functions beyond the shared conformance harness: half precision, sampling,
``torch.func`` and the public ``check_backend`` entry point."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diveq.backends.torch as dq  # noqa: E402
import diveq.reference as ref  # noqa: E402
from diveq._ops import OPS, OPS_BY_NAME  # noqa: E402
from diveq.testing import check_backend  # noqa: E402

RESULTS = [op.name for op in OPS if op.name != "nearest"]  # the functions returning values


def _inputs(name: str, dtype: torch.dtype, seed: int = 0):
    op = OPS_BY_NAME[name]
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, 5, 4, generator=g).to(dtype)
    books = torch.randn(*op.book_shape(2, 6, 4), generator=g)
    if op.books == "residual":  # later stages refine: smaller codewords
        books = books * torch.tensor([1.0, 0.5])[:, None, None]
    return z, books


def _call(name: str, z, books, **kw):
    fn = getattr(dq, name)
    if not OPS_BY_NAME[name].stochastic:
        return fn(z, books)
    return fn(z, books, generator=torch.Generator().manual_seed(1), **kw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", RESULTS)
def test_half_precision_searches_in_float32(name, dtype):
    z, books = _inputs(name, dtype)
    zr = z.clone().requires_grad_(True)
    out = _call(name, zr, books)
    assert out.values.dtype == dtype
    assert out.indices.dtype == torch.int64
    assert torch.isfinite(out.values.float()).all()
    # the search runs on the upcast input: same indices as float32 throughout
    assert torch.equal(out.indices, _call(name, z.float(), books).indices)
    if not name.endswith("quantize"):
        out.values.float().sum().backward()
        assert zr.grad is not None and zr.grad.dtype == dtype
        assert torch.isfinite(zr.grad.float()).all()


def test_half_precision_codebook_gradient():
    z, books = _inputs("diveq", torch.bfloat16)
    books.requires_grad_(True)
    out = dq.diveq(z, books, noise_std=0.0)
    out.values.float().sum().backward()
    assert books.grad is not None and books.grad.dtype == torch.float32
    assert torch.isfinite(books.grad).all()


def test_sampler_draws_from_the_generator_on_the_device_of_z():
    z, books = _inputs("sf_diveq", torch.float64)
    got = dq.sf_diveq(z, books, noise_std=0.1, generator=torch.Generator().manual_seed(3))
    g, op = torch.Generator().manual_seed(3), OPS_BY_NAME["sf_diveq"]
    noise = torch.randn(op.noise_shape(z.shape), generator=g, dtype=torch.float64)
    dither = torch.rand(op.dither_shape(books.shape), generator=g, dtype=torch.float64)
    want = dq.sf_diveq(z, books, noise_std=0.1, noise=noise, dither=dither)
    assert torch.equal(got.values, want.values)
    assert torch.equal(got.indices, want.indices)


def test_default_generator_is_torchs():
    z, books = _inputs("diveq", torch.float32)
    torch.manual_seed(5)
    a = dq.diveq(z, books, noise_std=0.5).values
    torch.manual_seed(5)
    b = dq.diveq(z, books, noise_std=0.5).values
    assert torch.equal(a, b)


def test_chunk_size_does_not_change_results():
    z, books = _inputs("sf_quantize", torch.float64)
    a, b = dq.sf_quantize(z, books), dq.sf_quantize(z, books, chunk_size=2)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.values, b.values)
    assert torch.equal(dq.nearest(z, books), dq.nearest(z, books, chunk_size=1))


def test_torch_func_grad_and_vjp_match_the_reference():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    c = torch.randn(4, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(5, 3, generator=g, dtype=torch.float64)
    cot = torch.randn(5, 3, generator=g, dtype=torch.float64)

    def values(z, c):
        return dq.diveq(z, c, noise_std=0.1, noise=noise).values

    want_dz, want_dc = ref.diveq_vjp(
        z.numpy(), c.numpy(), cot.numpy(), noise_std=0.1, noise=noise.numpy()
    )
    _, pullback = torch.func.vjp(values, z, c)
    dz, dc = pullback(cot)
    np.testing.assert_allclose(dz.numpy(), want_dz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dc.numpy(), want_dc, rtol=1e-12, atol=1e-12)
    gz, gc = torch.func.grad(lambda z, c: (values(z, c) * cot).sum(), argnums=(0, 1))(z, c)
    np.testing.assert_allclose(gz.numpy(), want_dz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gc.numpy(), want_dc, rtol=1e-12, atol=1e-12)


def test_gradient_at_a_codeword_is_finite():
    c = torch.tensor([[0.0, 1.0], [2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    z = c.detach()[:1].clone().requires_grad_(True)
    dq.diveq(z, c, noise_std=0.0).values.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
    assert torch.equal(c.grad, torch.zeros_like(c))


def test_check_backend_passes():
    report = check_backend(dq, max_examples=3)
    assert report.backend == "torch" and len(report.rows) > 50


MEMORY_CHILD = """
import resource, torch
import diveq.backends.torch as dq
torch.set_num_threads(1)
z, c = torch.randn(16384, 64), torch.randn(16384, 64)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for fn in (dq.nearest, dq.sf_quantize):
    fn(z, c)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20)
"""


def test_tiled_search_memory_stays_bounded():
    """N x K = 2^28 scores (1 GiB in float32) are searched in cache-sized tiles: the resident
    set grows by a few tiles, not by the matrix. (Before the tiles' results were copied into
    preallocated outputs, glibc's malloc pinned one freed tile per block: +1 GiB here.)"""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True, check=True
    )
    grew_gib = float(done.stdout.strip().splitlines()[-1])
    assert grew_gib < 0.5, f"the search grew the resident set by {grew_gib:.2f} GiB"
