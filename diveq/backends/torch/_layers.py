"""The one-codebook layers: :class:`DiVeQ` and :class:`SFDiVeQ`."""

from __future__ import annotations

from typing import Any

import torch

from diveq._layer_spec import LayerSpec
from diveq.backends.torch._layer import Quantizer

__all__ = ["DiVeQ", "SFDiVeQ"]


class DiVeQ(Quantizer):
    """Vector quantisation trained with DiVeQ, with dead-code replacement.

    Train mode runs :func:`diveq.backends.torch.diveq` (gradients reach ``z`` and the codebook
    without auxiliary losses), counts code usage and, every ``replacement_iters`` train-mode
    calls, replaces codes unused in that window by perturbed copies of live codes drawn in
    proportion to their use. Eval mode returns the nearest codewords and changes no state.
    Semantics: the reference layer :class:`diveq.reference.DiVeQ`, against which this layer is
    checked call by call with identical draws (:func:`diveq.testing.check_layers`).

    Parameters
    ----------
    num_codes : int
        Codebook size ``K``.
    dim : int
        Feature size ``D``.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise (0: deterministic DiVeQ).
    replacement_iters : int or None, default 100
        Length of the replacement window in train-mode calls; ``None`` turns replacement off.
    discard_threshold : float, default 0.01
        A code is dead when ``calls_used / replacement_iters < discard_threshold``.
    perturb_eps : float, default 1e-9
        Scale of the Gaussian perturbation added to a copied donor.
    feature_axis : int, default -1
        Axis of ``z`` holding the features, e.g. ``1`` for ``(B, C, H, W)``. When several axes
        have size ``dim`` nothing can tell which one holds the features: with the default
        ``-1``, images ``(B, C, H, W)`` whose ``W`` equals ``dim`` are quantised along ``W``
        without an error, so pass ``feature_axis=1`` for channels-first inputs. The results
        keep the shape of ``z``, with the feature axis innermost in memory (the strides of
        ``torch.channels_last`` for images): call ``.contiguous()`` before ``.view``.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init: ``U(-1/K, 1/K)`` (the VQ-VAE convention) or ``U[0, 1/K)`` (the official
        package and the paper's compression code), elementwise.
    chunk_size : int, optional
        Rows per tile of the nearest-codeword search (bounds its memory).
    device, dtype : optional
        Of the codebook parameter.
    process_group : torch.distributed.ProcessGroup, optional
        Group whose workers share the training state when ``torch.distributed`` is
        initialised (``None``: the default group); see Notes.

    Attributes
    ----------
    codebook : torch.nn.Parameter
        ``(K, D)``, initialised from ``U(-1/K, 1/K)``.
    hits, calls_used : torch.Tensor
        int64 buffers ``(K,)``: rows per code and calls using each code, this window.
    calls : torch.Tensor
        0-d int64 buffer: train-mode calls so far (``train_calls`` reads it as an int).

    Notes
    -----
    **Data-parallel training** (e.g. :class:`torch.nn.parallel.DistributedDataParallel`).
    Whenever ``torch.distributed`` is initialised (checked on every train-mode call) and
    ``process_group`` (default: the world group) has more than one worker, each train-mode
    call sums its per-code counts over the workers (one all-reduce of ``K`` integers) before
    adding them to ``hits`` and ``calls_used``, so every worker holds the same counters and a
    code used on any worker is alive. At a replacement every worker draws as usual and the new
    codebook of the group's rank 0 is broadcast, so all workers write identical rows.
    Requirements: every worker makes the same number of train-mode calls (the collectives run
    inside them; eval-mode calls run none), and the codebooks start equal (DDP broadcasts the
    parameters when it wraps the model). ``broadcast_buffers=False`` is recommended: the
    counters are already in sync, so DDP's per-step buffer broadcast only costs time; the
    default ``True`` is harmless (it copies identical values). Without ``torch.distributed``
    (or with one worker) the layer runs no collectives and behaves exactly as in one process.

    **torch.compile**. ``torch.compile(model, fullgraph=True)`` of a model containing the layer
    compiles a training step to one graph with no host sync: compiled, the call count (the
    ``calls`` buffer), the usage counters and the replacement are tensor operations
    (``torch.where`` masks), and the results equal the eager layer's bitwise under the
    ``aot_eager`` backend (float tolerance under ``inductor``). Eager calls pick the schedule's
    branches from a host mirror of ``calls``, so they never sync either. A
    :class:`torch.Generator` cannot be traced: compile with ``generator=None`` (torch's default
    generator) or explicit ``draws``. A compiled call draws replacement donors on every call
    (they are used at window ends only), so its random stream is not the eager layer's; runs
    agree exactly given the same explicit draws.

    Examples
    --------
    >>> import torch
    >>> import diveq.backends.torch as dq
    >>> vq = dq.DiVeQ(num_codes=16, dim=4)
    >>> out = vq(torch.randn(8, 4))
    >>> out.values.shape, out.indices.shape
    (torch.Size([8, 4]), torch.Size([8]))
    """

    codebook: torch.nn.Parameter

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        noise_std: float = 1e-3,
        replacement_iters: int | None = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
        chunk_size: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
        process_group: Any = None,
    ) -> None:
        spec = LayerSpec(
            "single",
            1,
            num_codes,
            dim,
            noise_std=noise_std,
            replacement_iters=replacement_iters,
            discard_threshold=discard_threshold,
            perturb_eps=perturb_eps,
            feature_axis=feature_axis,
            codebook_init=codebook_init,
        )
        super().__init__(
            spec, chunk_size=chunk_size, device=device, dtype=dtype, process_group=process_group
        )


class SFDiVeQ(Quantizer):
    """Space-filling vector quantisation (SF-DiVeQ) with the warm-up initialisation.

    Train-mode calls ``1 .. skip_iters - 1`` pass ``z`` through (index ``-1``) while the rows of
    the last ``avg_iters`` of them are kept; at call ``skip_iters - 1`` codeword ``j`` becomes
    the mean of the ``j``-th chunk of those rows and the rows are freed. From call
    ``skip_iters`` on, train mode runs :func:`diveq.backends.torch.sf_diveq`. Eval mode returns
    the exact nearest point of the codeword polyline and changes no state. Semantics:
    the reference layer :class:`diveq.reference.SFDiVeQ`.

    Parameters
    ----------
    num_codes : int
        Number of codewords ``K >= 2`` (the polyline has ``K - 1`` segments).
    dim : int
        Feature size ``D``.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise.
    skip_iters : int, default 1000
        Train-mode calls before quantisation starts (0 or 1: from the first call).
    avg_iters : int, default 50
        Warm-up calls whose rows initialise the codebook.
    feature_axis : int, default -1
        Axis of ``z`` holding the features; as for :class:`DiVeQ` (pass it whenever another
        axis may have size ``dim``).
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init: ``U(-1/K, 1/K)`` (the VQ-VAE convention) or ``U[0, 1/K)`` (the official
        package and the paper's compression code), elementwise.
    chunk_size : int, optional
        Rows per search tile.
    device, dtype : optional
        Of the codebook parameter.
    process_group : torch.distributed.ProcessGroup, optional
        Group whose workers share the training state when ``torch.distributed`` is
        initialised (``None``: the default group); see Notes.

    Attributes
    ----------
    codebook : torch.nn.Parameter
        ``(K, D)``: the polyline's vertices in order.
    hits, calls_used : torch.Tensor
        int64 buffers ``(K,)`` counting segment use.
    calls : torch.Tensor
        0-d int64 buffer: train-mode calls so far (``train_calls`` reads it as an int).

    Notes
    -----
    **Data-parallel training**: as for :class:`DiVeQ`, the per-call counts are summed over the
    workers of ``process_group``; at the end of the warm-up every worker gathers all workers'
    kept rows (all-gather), ordered by call, then rank, then row (a call's rows of rank 0
    first), and computes the same initial codebook from them. During the warm-up the codebook
    gets no gradient, so wrap the model with ``find_unused_parameters=True`` in
    :class:`~torch.nn.parallel.DistributedDataParallel`.

    **torch.compile**: as for :class:`DiVeQ`, with the warm-up on the device too: the rows are
    kept in a fixed-capacity buffer of ``avg_iters`` slots of the largest call's rows (the first
    compiled call allocates it, so the step compiles twice; a larger call grows it, as a new
    shape recompiles anyway), the init is a ``torch.cond``, and the phase a ``torch.where``
    mask. Caveats: a compiled init cannot raise on fewer than ``K`` valid rows, so it keeps the
    codebook instead (the eager layer raises); while a warm-up is ahead of or behind a
    compiled step, the step runs both the warm-up and the SF estimator (masked) and keeps the
    buffer allocated, until an eager train-mode call or a ``load_state_dict`` past the warm-up
    frees it (then the step compiles the SF estimator alone); the warm-up of data-parallel
    training cannot be compiled (the init gathers every worker's rows): run its first
    ``skip_iters - 1`` calls eagerly.

    Examples
    --------
    >>> import torch
    >>> import diveq.backends.torch as dq
    >>> vq = dq.SFDiVeQ(num_codes=8, dim=2, skip_iters=0)
    >>> out = vq(torch.randn(5, 2))
    >>> out.weights.shape
    torch.Size([5])
    """

    codebook: torch.nn.Parameter

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        noise_std: float = 1e-3,
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
            "single",
            1,
            num_codes,
            dim,
            space_filling=True,
            noise_std=noise_std,
            replacement_iters=None,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            feature_axis=feature_axis,
            codebook_init=codebook_init,
        )
        super().__init__(
            spec, chunk_size=chunk_size, device=device, dtype=dtype, process_group=process_group
        )
