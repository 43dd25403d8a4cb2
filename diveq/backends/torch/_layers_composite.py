"""Layers with ``M`` codebooks: :class:`ProductDiVeQ` and :class:`ResidualDiVeQ`."""

from __future__ import annotations

from typing import Any

import torch

from diveq._layer_spec import LayerSpec
from diveq.backends.torch._layer import Quantizer

__all__ = ["ProductDiVeQ", "ResidualDiVeQ"]

_DOC = """{what}

    Train mode runs :func:`diveq.backends.torch.{fn}` (or ``{sf_fn}`` with
    ``space_filling=True``); eval mode the hard inference ``{infer}`` and changes no state.
    DiVeQ codebooks get dead-code replacement per codebook, as :class:`DiVeQ`. With
    ``space_filling=True`` the first ``skip_iters - 1`` train-mode calls run composite DiVeQ
    (with replacement); at call ``skip_iters - 1`` each codebook is initialised from its own
    {latents} of the last ``avg_iters`` calls, as :class:`SFDiVeQ` does, and SF training starts.
    Semantics: the reference layers :class:`diveq.reference.ProductDiVeQ` and
    :class:`diveq.reference.ResidualDiVeQ` (checked by :func:`diveq.testing.check_layers`).

    Parameters
    ----------
    num_codebooks : int
        Number of codebooks ``M``.
    num_codes : int
        Codewords per codebook ``K`` (``>= 2`` with ``space_filling``).
    dim : int
        Feature size ``D``{dim_note}.
    space_filling : bool, default False
        Use SF-DiVeQ polylines instead of codewords.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise.
    replacement_iters : int or None, default 100
        Replacement window in train-mode calls (``None``: off); SF layers replace during the
        warm-up only.
    discard_threshold, perturb_eps : float
        As in :class:`DiVeQ`.
    skip_iters, avg_iters : int, default 1000 and 50
        The SF warm-up schedule (``space_filling=True`` only).
    feature_axis : int, default -1
        Axis of ``z`` holding the features; as for :class:`DiVeQ` (pass it whenever another
        axis may have size ``dim``).
    codebook_init : {{"symmetric", "positive"}}, default "symmetric"
        Codebook init: ``U(-1/K, 1/K)`` (the VQ-VAE convention) or ``U[0, 1/K)`` (the official
        package and the paper's compression code), elementwise.
    chunk_size : int, optional
        Rows per search tile.
    device, dtype : optional
        Of the codebooks parameter.
    process_group : torch.distributed.ProcessGroup, optional
        Group whose workers share the training state (``None``: the default group); see the
        Notes of :class:`DiVeQ` and :class:`SFDiVeQ` on data-parallel training and on
        ``torch.compile(fullgraph=True)`` (which works, with the caveats given there), which
        apply per codebook.

    Attributes
    ----------
    codebooks : torch.nn.Parameter
        ``{shape}``, initialised from ``U(-1/K, 1/K)``.
    hits, calls_used : torch.Tensor
        int64 buffers ``(M, K)``.
    calls : torch.Tensor
        0-d int64 buffer: train-mode calls so far (``train_calls`` reads it as an int).
    """


class _Composite(Quantizer):
    codebooks: torch.nn.Parameter
    layout = "product"

    def __init__(
        self,
        num_codebooks: int,
        num_codes: int,
        dim: int,
        *,
        space_filling: bool = False,
        noise_std: float = 1e-3,
        replacement_iters: int | None = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
        chunk_size: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
        process_group: Any = None,
    ) -> None:
        spec = LayerSpec(
            type(self).layout,
            num_codebooks,
            num_codes,
            dim,
            space_filling=space_filling,
            noise_std=noise_std,
            replacement_iters=replacement_iters,
            discard_threshold=discard_threshold,
            perturb_eps=perturb_eps,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            feature_axis=feature_axis,
            codebook_init=codebook_init,
        )
        super().__init__(
            spec, chunk_size=chunk_size, device=device, dtype=dtype, process_group=process_group
        )


class ProductDiVeQ(_Composite):
    __doc__ = _DOC.format(
        what="Product quantisation: block ``m`` of the features is quantised by codebook ``m``.",
        fn="product_diveq",
        sf_fn="product_sf_diveq",
        infer="product_quantize / product_sf_quantize",
        latents="block of the latents",
        dim_note=", a multiple of ``M``",
        shape="(M, K, D / M)",
    )
    layout = "product"


class ResidualDiVeQ(_Composite):
    __doc__ = _DOC.format(
        what="Residual quantisation: codebook ``m`` quantises what stages ``0`` to ``m-1`` left.",
        fn="residual_diveq",
        sf_fn="residual_sf_diveq",
        infer="residual_quantize / residual_sf_quantize",
        latents="stage residuals",
        dim_note="",
        shape="(M, K, D)",
    )
    layout = "residual"
