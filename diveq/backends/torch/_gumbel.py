"""The torch Gumbel-softmax layer: a codebook parameter and the core's layer call."""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as xp
import torch
from torch import nn

from diveq._checks import check_hard, check_tau
from diveq._types import LayerDraws, LayerOutput
from diveq.backends.torch._functions import FUNCTIONS, sample
from diveq.core._gumbel_layer import gumbel_layer_call, gumbel_spec

__all__ = ["GumbelVQ"]


class GumbelVQ(nn.Module):
    """Gumbel-softmax quantiser layer (Jang et al. 2017), a baseline of the DiVeQ paper.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    tau : float, default 1.0
        Temperature; an attribute that may change between steps (e.g. set from
        :func:`diveq.gumbel_temperature`).
    hard : bool, default False
        Straight-through: values are the sampled codewords, gradients those of the soft
        sample.
    feature_axis : int, default -1
        Axis of ``z`` holding the features (e.g. 1 for images ``(B, C, H, W)``).
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init ``U(-1/K, 1/K)`` or ``U[0, 1/K)``, elementwise.
    device, dtype : optional
        Of the codebook parameter.

    Notes
    -----
    Semantics: :class:`diveq.reference.GumbelVQ`. Train mode runs
    :func:`~diveq.backends.torch.gumbel_softmax` on the valid rows; eval mode the nearest
    codeword (:func:`~diveq.backends.torch.quantize`). Masked and non-finite rows pass through
    with index ``-1`` and send no gradient to the codebook. The codebook, the only state, is
    trained by the optimiser (there is no dead-code replacement: every code gets gradient).

    Examples
    --------
    >>> import torch, diveq
    >>> import diveq.backends.torch as dq
    >>> vq = dq.GumbelVQ(16, 4)
    >>> vq.tau = diveq.gumbel_temperature(1000, rate=1e-4)
    >>> vq(torch.randn(8, 4)).values.shape
    torch.Size([8, 4])
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        tau: float = 1.0,
        hard: bool = False,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spec = gumbel_spec(num_codes, dim, feature_axis, codebook_init)
        self.tau, self.hard = tau, hard
        self.codebook = nn.Parameter(torch.empty(self.spec.book_shape, device=device, dtype=dtype))
        self.reset_parameters()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "tau":
            check_tau(value)
        elif name == "hard":
            check_hard(value)
        super().__setattr__(name, value)

    def _param(self) -> torch.Tensor:
        """The codebook parameter (named as the other layers name theirs, for the test drivers)."""
        return self.codebook

    def reset_parameters(self) -> None:
        """Draw the codebook from the layer's ``codebook_init``."""
        low, high = self.spec.init_bounds
        with torch.no_grad():
            self.codebook.uniform_(low, high)

    def forward(
        self,
        z: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        draws: LayerDraws | None = None,
    ) -> LayerOutput:
        """Quantise ``z``: the Gumbel-softmax in train mode, the nearest codeword in eval mode.

        Parameters
        ----------
        z : torch.Tensor
            Latents with the features on ``feature_axis`` (size ``dim``), real floating.
        mask : torch.Tensor of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows pass through unchanged.
        generator : torch.Generator, optional
            Source of the Gumbel draws not given in ``draws``.
        draws : diveq.LayerDraws, optional
            ``draws.gumbel`` ``(N, K)``: explicit draws for this call.

        Returns
        -------
        LayerOutput
            ``(values, indices, perplexity)``.
        """

        def gumbel(rows: torch.Tensor) -> torch.Tensor:
            if draws is not None and draws.gumbel is not None:
                return draws.gumbel
            return sample(generator, [("gumbel", (rows.shape[0], self.spec.num_codes))], rows)[0]

        return gumbel_layer_call(
            self.spec,
            xp,
            FUNCTIONS.__getitem__,
            self.codebook,
            z,
            mask,
            train=self.training,
            tau=self.tau,
            hard=self.hard,
            gumbel=gumbel,
        )

    def extra_repr(self) -> str:
        s = self.spec
        parts = [f"num_codes={s.num_codes}", f"dim={s.dim}", f"tau={self.tau:g}"]
        parts += [f"hard={self.hard}"] if self.hard else []
        parts += [f"feature_axis={s.feature_axis}"] if s.feature_axis != -1 else []
        return ", ".join(parts)
