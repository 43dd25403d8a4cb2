"""``unit(v) = v / ||v||`` with no floor on the norm (SPEC section 1): a DiVeQ row whose
distance to its codeword is far below 1e-12 still lands on the codeword (``noise_std = 0``)
and still gets the unit gradient direction, in every implementation."""

from __future__ import annotations

import numpy as np
import pytest

import diveq.reference as ref

TINY = {"float64": 1e-200, "float32": 1e-30}  # below any 1e-12 floor, above underflow


def _case(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = TINY[dtype]
    z = np.array([[0.0, 0.0], [9.0, 8.0]], dtype=dtype)  # row 0: a distance of t to c_0
    codebook = np.array([[t, 0.0], [-50.0, -50.0], [9.0, 9.0]], dtype=dtype)
    return z, codebook, np.array([[1.0, 2.0], [-1.0, 3.0]], dtype=dtype)


def _expected(z, codebook, g):
    """Values ``c_k``; ``dz = g - (g . ê) ê`` and ``dc_k = (g . ê) ê`` with the exact ``ê``."""
    e = np.array([[1.0, 0.0], [0.0, 1.0]])  # directions of c_k - z for rows 0 and 1
    a = np.sum(g * e, axis=-1, keepdims=True)
    dc = np.zeros(codebook.shape)
    dc[[0, 2]] = a * e
    return codebook[[0, 2]], g - a * e, dc


def test_reference_tiny_distance_lands_on_the_codeword_with_a_unit_direction():
    z, c, g = _case("float64")
    values, dz, dc = _expected(z, c, g)
    out = ref.diveq(z, c, noise_std=0.0)
    np.testing.assert_array_equal(out.indices, [0, 2])
    np.testing.assert_allclose(out.values, values, rtol=1e-15)
    got_dz, got_dc = ref.diveq_vjp(z, c, g, noise_std=0.0)
    np.testing.assert_allclose(got_dz, dz, rtol=1e-15)
    np.testing.assert_allclose(got_dc, dc, rtol=1e-15)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backend_tiny_distance_lands_on_the_codeword_with_a_unit_direction(backend):
    z, c, g = _case("float32")
    values, dz, dc = _expected(z, c, g)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        dq = pytest.importorskip("diveq.backends.torch")
        zt, ct = (torch.tensor(a, requires_grad=True) for a in (z, c))
        out = dq.diveq(zt, ct, noise_std=0.0)
        out.values.backward(torch.tensor(g))
        got = out.values.detach().numpy(), zt.grad.numpy(), ct.grad.numpy()
    else:
        jax = pytest.importorskip("jax")
        dq = pytest.importorskip("diveq.backends.jax")
        out, vjp = jax.vjp(lambda z, c: dq.diveq(z, c, noise_std=0.0).values, z, c)
        got = (np.asarray(out), *(np.asarray(x) for x in vjp(g)))
    for have, want in zip(got, (values, dz, dc), strict=True):
        np.testing.assert_allclose(have, want, rtol=1e-6, atol=0)
