"""SF warm-up initialisation of the codebook, as a pure function."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq.reference import _validate as v

__all__ = ["warmup_codebook"]


def warmup_codebook(rows: ArrayLike, num_codes: int, *, valid: ArrayLike | None = None) -> v.F64:
    """SF warm-up initialisation: codeword ``j`` is the mean of a chunk of collected rows.

    Parameters
    ----------
    rows : array_like, shape (R, D)
        Latent rows in call order, real floating dtype.
    num_codes : int
        ``K >= 1``.
    valid : array_like of bool, shape (R,), optional
        Which rows to keep (default: all). Invalid rows may be non-finite.

    Returns
    -------
    ndarray of float64, shape (K, D)
        With the ``R_valid`` kept rows in order and ``h = floor(R_valid / K)``, codeword ``j``
        is the mean of kept rows ``[j h, (j + 1) h)``.

    Raises
    ------
    TypeError
        If ``rows`` is not real floating or ``valid`` is not boolean.
    ValueError
        On a shape mismatch, non-finite kept rows, or ``R_valid < K``.

    Examples
    --------
    >>> warmup_codebook([[0.0], [2.0], [4.0], [6.0], [9.0]], 2)
    array([[1.],
           [5.]])
    """
    ra = v.floating_matrix("rows", rows)
    k = v.positive_int("num_codes", num_codes)
    keep = np.ones(ra.shape[0], dtype=bool) if valid is None else np.asarray(valid)
    if keep.dtype != np.bool_:
        raise TypeError(f"`valid` must have dtype bool; got dtype {keep.dtype}")
    if keep.shape != (ra.shape[0],):
        raise ValueError(f"`valid` must have shape ({ra.shape[0]},); got shape {keep.shape}")
    kept = v.finite("rows", ra[keep])
    if kept.shape[0] < k:
        raise ValueError(
            f"SF warm-up needs at least K = {k} valid rows to initialise the codebook; "
            f"got R_valid = {kept.shape[0]} valid rows (rows.shape = {ra.shape})"
        )
    h = kept.shape[0] // k
    return np.stack([kept[j * h : (j + 1) * h].mean(axis=0) for j in range(k)])
