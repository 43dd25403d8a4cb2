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


class LayerOutput(NamedTuple):
    """What a layer call returns (every backend and the reference).

    Attributes
    ----------
    values : array, shape ``z.shape``
        Quantised latents in the dtype of ``z``; masked and non-finite rows are ``z`` unchanged.
    indices : integer array
        Selected codeword per row, shape ``z.shape`` without the feature axis (composites: plus
        a trailing axis ``M``); ``-1`` for masked and non-finite rows.
    perplexity : array, shape ()
        Codebook perplexity of the call's valid rows (the mean over codebooks for composites).
    """

    values: Any
    indices: Any
    perplexity: Any


class SFLayerOutput(NamedTuple):
    """What a space-filling layer call returns: :class:`LayerOutput` plus ``weights``.

    Attributes
    ----------
    values, indices, perplexity : array
        As in :class:`LayerOutput`; ``indices`` are segment indices (``-1`` while a one-codebook
        SF warm-up passes the input through).
    weights : array, same shape as ``indices``
        Position on the segment (the dither in training, the exact projection at inference);
        ``0`` where ``indices`` is ``-1``. ``layer.decode(indices, weights)`` gives the point.
    """

    values: Any
    indices: Any
    perplexity: Any
    weights: Any


class LayerDraws(NamedTuple):
    """Explicit random draws for one train-mode layer call (each field optional).

    With the same draws, the same call gives the same result on every backend and on the
    reference layers. A field left ``None`` is sampled by the backend in its own idiom; a field
    the call does not need is ignored. ``N`` is the number of rows: the latents with the
    feature axis moved last, flattened to ``(N, D)`` in C order.

    Attributes
    ----------
    noise : array, optional
        Standard-normal directional noise of the call's estimator: ``(N, D)``, or
        ``(2, N, D)`` for a one-codebook space-filling layer (also during its warm-up, which
        uses none: the shape never depends on the phase, which may be traced).
    dither : array, optional
        SF dither in ``[0, 1)``: ``(K - 1,)``, or ``(M, K - 1)`` for composites.
    donors : array, optional
        Uniform draws in ``[0, 1)`` picking each dead code's donor at a replacement:
        ``(K,)``, or ``(M, K)`` for composites.
    perturbation : array, optional
        Standard-normal perturbation of replaced codes: ``(K, D)``, or ``(M, K, D')``.
    gumbel : array, optional
        Standard Gumbel draws of a Gumbel-softmax layer: ``(N, K)``.
    """

    noise: Any = None
    dither: Any = None
    donors: Any = None
    perturbation: Any = None
    gumbel: Any = None


class EMAState(NamedTuple):
    """State of an EMA codebook (van den Oord et al. 2017, appendix; Razavi et al. 2019).

    Attributes
    ----------
    codebook : array, shape (K, D)
        The codewords, ``embed_sum / smoothed(cluster_size)`` after every update.
    cluster_size : array, shape (K,)
        ``N``: exponential moving average of the rows assigned to each code.
    embed_sum : array, shape (K, D)
        ``m``: exponential moving average of the sum of the rows assigned to each code.
    """

    codebook: Any
    cluster_size: Any
    embed_sum: Any


class EMALayerOutput(NamedTuple):
    """What an EMA-codebook layer call returns (every backend and the reference).

    Attributes
    ----------
    values, indices, perplexity : array
        As in :class:`LayerOutput`: straight-through values ``z + sg(c_k - z)``.
    loss : array, shape ()
        The commitment term ``beta * mean((z - sg c_k)^2)`` over the valid rows' entries (``0``
        without valid rows): add it to the training loss; the codebook needs no loss.
    """

    values: Any
    indices: Any
    perplexity: Any
    loss: Any


class GumbelState(NamedTuple):
    """State of a Gumbel-softmax layer: only its codebook, trained by gradient (a pytree in
    JAX).

    Attributes
    ----------
    codebook : array, shape (K, D)
        The codewords.
    """

    codebook: Any
