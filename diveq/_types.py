"""Result types shared by every implementation (reference, core, backends)."""

from __future__ import annotations

from typing import Any, NamedTuple


class Quantized(NamedTuple):
    """Result of a hard or DiVeQ-style quantisation.

    Attributes
    ----------
    values : array, shape ``z.shape``
        Quantised vectors, in the dtype of ``z``.
    indices : integer array, shape ``z.shape[:-1]`` (``z.shape[:-1] + (M,)`` for composites)
        Index of the selected codeword in each codebook.
    """

    values: Any
    indices: Any


class SFQuantized(NamedTuple):
    """Result of a space-filling (polyline) quantisation.

    Attributes
    ----------
    values : array, shape ``z.shape``
        Quantised vectors, in the dtype of ``z``.
    indices : integer array, shape ``z.shape[:-1]`` (``+ (M,)`` for composites)
        Segment index ``i``: the point lies on ``[c_i, c_{i+1}]``.
    weights : array, same shape as ``indices``
        Position on the segment: the dither ``lam_i`` in training, the exact projection
        parameter ``t`` at inference.
    """

    values: Any
    indices: Any
    weights: Any
