"""Inputs for the fused search kernels' checks, shared by the JAX test and the Triton
interpreter run (``tests/_triton_interpret.py``, a subprocess: Triton's interpreter must be on
before Triton's first import).

One latent/codebook pair holds every hard case at once, so each kernel compiles once per dtype:
``K = 70`` codewords (two tiles of 64, the second partial), ``D = 67`` features (not a power of
two, and more than one 64-wide feature tile), ``N = 45`` rows (the last row block partial),
duplicated codewords in different tiles (exact ties: the first index wins) and rows just outside
a polyline corner (the structural tie of two segments at their shared vertex: the first
segment wins).
"""

from __future__ import annotations

import numpy as np

N, K, D = 45, 70, 67
#: codeword 66 repeats codeword 3 (second tile vs first), 10 repeats 9 (same tile)
DUPLICATES = ((66, 3), (10, 9))
#: vertices with rows placed just beyond them, outside both neighbouring segments
CORNERS = (5, 64)
#: rows the polyline projection is compared on: the first four lie next to a vertex, where
#: adjacent segments differ by second-order amounts (near-ties, SPEC section 8)
SF_ROWS = slice(4, None)


def corner_row(c: np.ndarray, j: int, eps: float = 1e-3) -> np.ndarray:
    """A point whose projection onto both segments at vertex ``j`` clips to ``c_j``."""
    a, b = c[j - 1] - c[j], c[j + 1] - c[j]
    u = -(a / np.linalg.norm(a) + b / np.linalg.norm(b))
    return c[j] + eps * u / np.linalg.norm(u)


def case() -> tuple[np.ndarray, np.ndarray]:
    """``(z, codebook)`` in float64 (fixed seed)."""
    rng = np.random.default_rng(14)
    c = rng.standard_normal((K, D))
    for dup, orig in DUPLICATES:
        c[dup] = c[orig]
    z = rng.standard_normal((N, D))
    z[:4] = c[[3, 66, 9, 10]] + 1e-3 * rng.standard_normal((4, D))  # near duplicated codes
    for row, j in enumerate(CORNERS, start=4):
        z[row] = corner_row(c, j)
    return z, c


def dither() -> np.ndarray:
    """An SF dither ``(K - 1,)`` for the dithered-point selection."""
    return np.random.default_rng(15).random(K - 1)


#: scale applied to the float32 overflow case (squared norms overflow float32 without the
#: power-of-two scaling of the search)
HUGE = 1e20
