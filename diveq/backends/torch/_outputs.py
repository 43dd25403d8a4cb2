"""The NamedTuples the torch layers return."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["LayerOutput", "SFLayerOutput"]


class LayerOutput(NamedTuple):
    """Output of a DiVeQ layer.

    Attributes
    ----------
    values : torch.Tensor
        Quantised latents, the shape and dtype of the input.
    indices : torch.Tensor
        int64 code indices, the input shape without the feature axis (composites: plus a
        trailing axis ``M``); ``-1`` for masked and non-finite rows.
    perplexity : torch.Tensor
        Codebook perplexity of this call (0-d; the mean over codebooks for composites).
    """

    values: torch.Tensor
    indices: torch.Tensor
    perplexity: torch.Tensor


class SFLayerOutput(NamedTuple):
    """Output of a space-filling layer: :class:`LayerOutput` plus the segment positions.

    Attributes
    ----------
    values, indices, perplexity : torch.Tensor
        As in :class:`LayerOutput`; ``indices`` are segment indices (``-1`` while the SF
        warm-up passes the input through).
    weights : torch.Tensor
        Position on the segment (the dither in training, the exact projection at inference),
        shaped as ``indices``; ``0`` where ``indices`` is ``-1`` or a vertex was selected.
        ``layer.decode(indices, weights)`` gives the point back.
    """

    values: torch.Tensor
    indices: torch.Tensor
    perplexity: torch.Tensor
    weights: torch.Tensor
