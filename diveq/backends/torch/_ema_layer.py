"""The torch EMA-codebook layer: the codebook and its moving averages as buffers, the call and
the update from the core (:mod:`diveq.core._ema_layer`), collectives for data parallelism."""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as xp
import torch
from torch import nn

from diveq._ema_spec import EMASpec
from diveq._types import EMALayerOutput, EMAState
from diveq.backends.torch._distributed import active_group, all_reduce_sum
from diveq.core import _layer_rows as rows_
from diveq.core._ema import ema_update
from diveq.core._ema_layer import ema_call, ema_output
from diveq.core._state import perplexity_from_counts

__all__ = ["EMAVQ"]


class EMAVQ(nn.Module):
    """Vector quantisation with an EMA codebook (VQ-VAE appendix; Razavi et al. 2019).

    The forward pass is the straight-through estimator (:func:`diveq.backends.torch.ste`):
    values ``z + sg(c_k - z)``, gradient passed to ``z``. The codebook is a buffer, not a
    parameter, so optimisers leave it alone: every train-mode call moves it by exponential
    moving averages of the rows assigned to each code (:func:`diveq.backends.torch.ema_update`).
    The output carries the commitment term ``loss = beta * mean((z - sg c_k)^2)``: add it to
    the training loss. Eval mode changes no state. Semantics: the reference layer
    :class:`diveq.reference.EMAVQ`, against which this layer is checked call by call
    (:func:`diveq.testing.check_ema_layers`).

    Parameters
    ----------
    num_codes : int
        Codebook size ``K``.
    dim : int
        Feature size ``D``.
    decay : float, default 0.99
        EMA decay in ``[0, 1]``.
    eps : float, default 1e-5
        Laplace smoothing of the cluster sizes.
    beta : float, default 0.25
        Weight of the commitment term.
    feature_axis : int, default -1
        Axis of ``z`` holding the features, e.g. ``1`` for ``(B, C, H, W)``.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.
    chunk_size : int, optional
        Rows per tile of the nearest-codeword search.
    device, dtype : optional
        Of the buffers.
    process_group : torch.distributed.ProcessGroup, optional
        Group whose workers share the codebook when ``torch.distributed`` is initialised
        (``None``: the default group).

    Attributes
    ----------
    codebook : torch.Tensor
        Buffer ``(K, D)``.
    cluster_size, embed_sum : torch.Tensor
        Buffers ``(K,)`` and ``(K, D)``: the moving averages ``N`` and ``m``; they start at
        ``1`` and ``codebook`` (:func:`diveq.reference.ema_init` says why).

    Notes
    -----
    Masked (``mask`` False) and non-finite rows pass through unchanged, get index ``-1`` and
    are neither counted nor part of the loss. **Data-parallel training**: whenever
    ``torch.distributed`` is initialised and the group has more than one worker, each
    train-mode call sums the per-code counts and row sums over the workers (one all-reduce
    of ``K (D + 1)`` numbers) before the update, so every worker writes the same codebook;
    every worker must make the same number of train-mode calls. The loss is each worker's own.

    Examples
    --------
    >>> import torch
    >>> import diveq.backends.torch as dq
    >>> vq = dq.EMAVQ(num_codes=16, dim=4)
    >>> out = vq(torch.randn(8, 4))
    >>> out.values.shape, out.indices.shape, out.loss.shape
    (torch.Size([8, 4]), torch.Size([8]), torch.Size([]))
    """

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        decay: float = 0.99,
        eps: float = 1e-5,
        beta: float = 0.25,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
        chunk_size: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
        process_group: Any = None,
    ) -> None:
        super().__init__()
        self.spec = EMASpec(num_codes, dim, decay, eps, beta, feature_axis, codebook_init)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"`chunk_size` must be None or an int >= 1; got {chunk_size!r}")
        self.chunk_size = chunk_size
        self.process_group = process_group
        book = torch.empty((num_codes, dim), device=device, dtype=dtype)
        self.register_buffer("codebook", book)
        self.register_buffer("cluster_size", torch.ones(num_codes, device=device, dtype=dtype))
        self.register_buffer("embed_sum", torch.empty_like(book))
        self.reset_parameters()

    def reset_parameters(self, codebook: torch.Tensor | None = None) -> None:
        """Start afresh: ``codebook`` (copied) or one drawn from ``codebook_init``; then
        ``cluster_size = 1`` and ``embed_sum = codebook``.

        Parameters
        ----------
        codebook : torch.Tensor, optional
            Initial codewords ``(K, D)``.
        """
        with torch.no_grad():
            if codebook is None:
                self.codebook.uniform_(*self.spec.init_bounds)
            else:
                self.codebook.copy_(codebook)
            self.cluster_size.fill_(1.0)
            self.embed_sum.copy_(self.codebook)

    @property
    def state(self) -> EMAState:
        """The buffers as an :class:`~diveq.EMAState` (views, not copies)."""
        return EMAState(self.codebook, self.cluster_size, self.embed_sum)

    def forward(
        self,
        z: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> EMALayerOutput:
        """Quantise ``z``; in train mode also move the codebook.

        Parameters
        ----------
        z : torch.Tensor
            Latents with the features on ``feature_axis`` (size ``dim``), real floating.
        mask : torch.Tensor of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows are left out.
        generator : torch.Generator, optional
            Unused (the layer draws nothing); accepted so that it drops in where the other
            layers are called.

        Returns
        -------
        EMALayerOutput
            ``(values, indices, perplexity, loss)``.
        """
        del generator
        spec = self.spec
        rows, valid, lead = rows_.to_rows(spec.rows, xp, z, mask)
        call = ema_call(
            spec,
            xp,
            self.codebook,
            rows,
            valid,
            stop_gradient=torch.Tensor.detach,
            chunk_size=self.chunk_size,
        )
        counts = self._update(call.counts, call.sums) if self.training else call.counts
        values, indices = ema_output(spec, xp, rows, valid, lead, call)
        return EMALayerOutput(values, indices, perplexity_from_counts(counts), call.loss)

    @torch.no_grad()
    def _update(self, counts: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
        """Sum the statistics over the workers, then the EMA step, written into the buffers."""
        group = active_group(self.process_group)
        if group is not None:
            packed = torch.cat([counts[:, None], sums], dim=1)
            all_reduce_sum(packed, group)
            counts, sums = packed[:, 0], packed[:, 1:]
        new = ema_update(self.state, counts, sums, decay=self.spec.decay, eps=self.spec.eps)
        for buffer, value in zip(self.state, new, strict=True):
            buffer.copy_(value)
        return counts

    def extra_repr(self) -> str:
        s = self.spec
        parts = [f"num_codes={s.num_codes}", f"dim={s.dim}", f"decay={s.decay:g}"]
        parts += [f"eps={s.eps:g}", f"beta={s.beta:g}"]
        if s.feature_axis != -1:
            parts.append(f"feature_axis={s.feature_axis}")
        if s.codebook_init != "symmetric":
            parts.append(f"codebook_init={s.codebook_init!r}")
        return ", ".join(parts)
