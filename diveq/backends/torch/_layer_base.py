"""What every torch layer shares: the forward pass around the estimator, and the training state.

A layer owns its codebook(s) as a :class:`torch.nn.Parameter` and its usage counters as int64
buffers; the count of train-mode calls lives on the host (so the schedule costs no device
sync) and travels in ``state_dict()`` as extra state, together with any SF warm-up rows. Every
state change goes through the pure functions of :mod:`diveq.core` (``update_usage``,
``replace_dead_codes``, ``warmup_codebook`` and the schedule predicates). Subclasses choose the
codebook layout and the estimator; internally the codebooks are always seen as ``(M, K, D')``
and per-row indices as ``(N, M)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

import diveq.core as core
from diveq.backends.torch._distributed import active_group
from diveq.backends.torch._functions import FUNCTIONS
from diveq.backends.torch._outputs import LayerOutput, SFLayerOutput
from diveq.backends.torch._usage import add_usage, replace_dead
from diveq.backends.torch._warmup import WarmupBuffer

__all__ = ["Quantizer"]


def _int_option(name: str, value: Any, minimum: int, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {what}; got {value!r}")
    return value


def _real_option(name: str, value: Any, nonnegative: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite real number; got {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"`{name}` must be >= 0; got {value!r}")
    return float(value)


class Quantizer(nn.Module):
    """Base class of the layers (not public): see :class:`diveq.backends.torch.DiVeQ`.

    Subclasses set ``layout`` (``"single"``, ``"product"``, ``"residual"``) and may override
    :meth:`_latents` (rows kept for the SF warm-up) and :meth:`_combine` (decode).
    """

    layout = "single"
    hits: torch.Tensor
    calls_used: torch.Tensor

    def __init__(
        self,
        num_books: int,
        num_codes: int,
        dim: int,
        *,
        space_filling: bool,
        noise_std: float,
        replacement_iters: int | None,
        discard_threshold: float,
        perturb_eps: float,
        skip_iters: int,
        avg_iters: int,
        feature_axis: int,
        chunk_size: int | None,
        device: Any,
        dtype: torch.dtype | None,
        process_group: Any = None,
    ) -> None:
        super().__init__()
        # Data-parallel synchronisation group (None: the default group, when initialised).
        self.process_group = process_group
        self.num_codebooks = _int_option("num_codebooks", num_books, 1)
        self.num_codes = _int_option("num_codes", num_codes, 2 if space_filling else 1)
        self.dim = _int_option("dim", dim, 1)
        if self.layout == "product" and dim % num_books != 0:
            raise ValueError(
                f"product quantisation needs dim % num_codebooks == 0; got dim = {dim}, "
                f"num_codebooks = {num_books}"
            )
        self.space_filling = bool(space_filling)
        self.noise_std = _real_option("noise_std", noise_std)
        self.replacement_iters = _int_option("replacement_iters", replacement_iters, 1, True)
        self.discard_threshold = _real_option("discard_threshold", discard_threshold, False)
        self.perturb_eps = _real_option("perturb_eps", perturb_eps)
        self.skip_iters = _int_option("skip_iters", skip_iters, 0) if space_filling else 0
        self.avg_iters = _int_option("avg_iters", avg_iters, 0) if space_filling else 0
        if self.skip_iters >= 2 and self.avg_iters < 1:
            raise ValueError(f"`avg_iters` must be >= 1 when skip_iters >= 2; got {avg_iters!r}")
        if isinstance(feature_axis, bool) or not isinstance(feature_axis, int):
            raise ValueError(f"`feature_axis` must be an int; got {feature_axis!r}")
        self.feature_axis = feature_axis
        self.chunk_size = _int_option("chunk_size", chunk_size, 1, True)
        self.width = dim // num_books if self.layout == "product" else dim
        shape: tuple[int, ...] = (self.num_codes, self.width)
        if self.layout != "single":
            shape = (self.num_codebooks, *shape)
        param = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        self.register_parameter(self._param_name, param)
        counters = shape[:-1]
        self.register_buffer("hits", torch.zeros(counters, dtype=torch.int64, device=device))
        self.register_buffer("calls_used", torch.zeros_like(self.hits))
        self._calls = 0
        self._warmup = WarmupBuffer()
        self._sync_phase()
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters and state

    @property
    def _param_name(self) -> str:
        return "codebook" if self.layout == "single" else "codebooks"

    def _param(self) -> torch.Tensor:
        param: torch.Tensor = getattr(self, self._param_name)
        return param

    def _books(self) -> torch.Tensor:
        """The codebook(s) as ``(M, K, D')`` (a view of the parameter)."""
        return self._param().view(self.num_codebooks, self.num_codes, self.width)

    def reset_parameters(self) -> None:
        """Draw the codebook(s) from ``U(-1/K, 1/K)`` and zero the usage counters."""
        bound = 1.0 / self.num_codes
        with torch.no_grad():
            self._param().uniform_(-bound, bound)
            self._reset_counters()

    def _reset_counters(self) -> None:
        self.hits.zero_()
        self.calls_used.zero_()

    @property
    def train_calls(self) -> int:
        """Number of train-mode forward calls so far (host integer)."""
        return self._calls

    @property
    def warmed_up(self) -> bool:
        """Whether the next train-mode call runs the layer's own estimator (not the warm-up)."""
        return not self._warming

    def _sync_phase(self) -> None:
        quantises = core.warmup_quantises(self._calls + 1, self.skip_iters)
        self._warming = self.space_filling and not quantises

    def get_extra_state(self) -> dict[str, Any]:
        """Host-side state for ``state_dict()``: the train-call count and SF warm-up rows."""
        return {"train_calls": self._calls, **self._warmup.state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_extra_state` (``load_state_dict``)."""
        self._calls = int(state["train_calls"])
        self._warmup.load(state)
        self._sync_phase()

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        z: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> LayerOutput | SFLayerOutput:
        """Quantise ``z``; in train mode also advance the training state.

        Parameters
        ----------
        z : torch.Tensor
            Latents with the features on ``feature_axis`` (size ``dim``), real floating.
        mask : torch.Tensor of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows pass through unchanged,
            get index ``-1``, are not counted and send no gradient to the codebook.
        generator : torch.Generator, optional
            Source of the training draws (``None``: torch's default generator).

        Returns
        -------
        LayerOutput or SFLayerOutput
            ``(values, indices, perplexity)`` (space-filling layers add ``weights``).
        """
        if not torch.is_floating_point(z):
            raise TypeError(f"`z` must have a real floating dtype; got dtype {z.dtype}")
        x = torch.movedim(z, self.feature_axis, -1)
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"feature size mismatch: the layer has dim = {self.dim} but `z` has "
                f"{x.shape[-1]} features on axis {self.feature_axis} (z.shape = {tuple(z.shape)})"
            )
        lead = x.shape[:-1]
        rows = x.reshape(-1, self.dim)
        valid = torch.isfinite(rows).all(dim=-1)
        if mask is not None:
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(lead):
                error = TypeError if mask.dtype != torch.bool else ValueError
                raise error(
                    f"`mask` must be a bool tensor of shape {tuple(lead)} (z.shape = "
                    f"{tuple(z.shape)} without axis {self.feature_axis}); got dtype "
                    f"{mask.dtype} and shape {tuple(mask.shape)}"
                )
            valid = valid & mask.reshape(-1)
        safe = torch.where(valid[:, None], rows, 0.0)
        # `_warming` is a bool kept in step with the host call count, so compiled code depends
        # on the phase (at most two graphs), never on the count itself.
        phase = "eval" if not self.training else ("warmup" if self._warming else "train")
        values, idx, weights = self._quantise(phase, safe, generator)
        values = torch.where(valid[:, None], values, rows)
        idx = torch.where(valid[:, None], idx, -1)
        perplexity = self._perplexity(idx)
        if self.training:
            self._record(safe, idx, valid, generator)
        values = torch.movedim(values.reshape(*lead, self.dim), -1, self.feature_axis)
        indices = self._unrows(idx, lead)
        if not self.space_filling:
            return LayerOutput(values, indices, perplexity)
        weights = torch.where(valid[:, None], weights, 0.0)
        return SFLayerOutput(values, indices, perplexity, self._unrows(weights, lead))

    def _unrows(self, x: torch.Tensor, lead: Any) -> torch.Tensor:
        shape = (*lead,) if self.layout == "single" else (*lead, x.shape[-1])
        return x.reshape(shape)

    def _method(self, phase: str) -> str | None:
        """Name of the backend function for ``phase`` (``None``: pass the input through)."""
        prefix = "" if self.layout == "single" else self.layout + "_"
        if phase == "eval":
            return prefix + ("sf_quantize" if self.space_filling else "quantize")
        if phase == "warmup":  # SF warm-up: identity (one codebook) or composite DiVeQ
            return None if self.layout == "single" else prefix + "diveq"
        return prefix + ("sf_diveq" if self.space_filling else "diveq")

    def _quantise(
        self, phase: str, x: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``(N, D)`` -> values ``(N, D)``, indices and weights ``(N, M)``."""
        name = self._method(phase)
        n, m = x.shape[0], self.num_codebooks
        if name is None:
            return x, torch.full((n, m), -1, dtype=torch.int64, device=x.device), x.new_zeros(n, m)
        kwargs: dict[str, Any] = {"chunk_size": self.chunk_size}
        if phase != "eval":
            kwargs.update(noise_std=self.noise_std, generator=generator)
        out = FUNCTIONS[name](x, self._param(), **kwargs)
        weights = getattr(out, "weights", None)
        if weights is None:
            weights = x.new_zeros(n, m)
        return out.values, out.indices.reshape(n, m), weights.reshape(n, m)

    def _perplexity(self, idx: torch.Tensor) -> torch.Tensor:
        per_book = [core.perplexity(idx[:, m], self.num_codes) for m in range(idx.shape[1])]
        return per_book[0] if len(per_book) == 1 else torch.stack(per_book).mean()

    # ------------------------------------------------------------------ training state

    @torch.compiler.disable
    @torch.no_grad()
    def _record(
        self,
        x: torch.Tensor,
        idx: torch.Tensor,
        valid: torch.Tensor,
        generator: torch.Generator | None,
    ) -> None:
        """After a train-mode call: count usage, keep warm-up rows, initialise or replace.

        Runs eagerly (outside ``torch.compile`` graphs): it reads and advances the host-side
        call count, which would otherwise be baked into compiled code.
        """
        self._calls += 1
        call = self._calls
        self._sync_phase()
        k = self.num_codes
        group = active_group(self.process_group)  # None: single process, no collectives
        add_usage(self.hits, self.calls_used, idx, k, group=group)
        if not self.space_filling:
            warming = False
        else:
            warming = not core.warmup_quantises(call, self.skip_iters)
            if core.warmup_collects(call, self.skip_iters, self.avg_iters):
                self._warmup.append(self._latents(x, idx), valid)
            if core.warmup_initialises(call, self.skip_iters):
                books = self._warmup.codebooks(k, like=self._param(), group=group)
                self._param().data.copy_(books.view_as(self._param()))
                self._warmup.clear()
                self._reset_counters()
                return
        if (not self.space_filling or warming) and core.replacement_due(
            call, self.replacement_iters
        ):
            self._replace(generator, group)
            self._reset_counters()

    def _replace(self, generator: torch.Generator | None, group: Any = None) -> None:
        iters = self.replacement_iters
        if iters is None:
            return
        new = replace_dead(
            self._books().detach(),
            self.hits,
            self.calls_used,
            replacement_iters=iters,
            discard_threshold=self.discard_threshold,
            perturb_eps=self.perturb_eps,
            generator=generator,
            group=group,
        )
        # In place on .data: the Parameter object (and any optimiser state) stays attached.
        self._param().data.copy_(new.view_as(self._param()))

    def _latents(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``(N, M, D')`` that initialise each codebook after the SF warm-up."""
        return x.reshape(x.shape[0], self.num_codebooks, self.width)

    # ------------------------------------------------------------------ decoding

    def decode(self, indices: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors for code indices (the inverse of the layer's hard inference).

        Parameters
        ----------
        indices : torch.Tensor of int
            As returned in ``output.indices`` (composites: trailing axis ``M``).
        weights : torch.Tensor, optional
            Space-filling layers only: positions on the segments (``output.weights``); the
            point is ``c_i + w (c_{i+1} - c_i)``. Omitted: the vertices ``c_i``.

        Returns
        -------
        torch.Tensor
            Vectors in the codebook dtype with the features on ``feature_axis``; rows with
            index ``-1`` decode to zeros.
        """
        idx = indices if self.layout != "single" else indices[..., None]
        if idx.shape[-1] != self.num_codebooks:
            raise ValueError(
                f"`indices` must end with an axis of size M = {self.num_codebooks}; "
                f"got shape {tuple(indices.shape)}"
            )
        if weights is not None and not self.space_filling:
            raise ValueError("`weights` is only meaningful for space-filling layers")
        k = self.num_codes
        table = self._books().reshape(-1, self.width)
        safe = idx.clamp(0, k - 1) + torch.arange(self.num_codebooks, device=idx.device) * k
        vectors = table[safe]
        if weights is not None:
            w = (weights if self.layout != "single" else weights[..., None])[..., None]
            w = w.to(vectors.dtype)
            upper = table[(safe + 1).clamp(max=table.shape[0] - 1)]
            vectors = torch.where(w >= 1.0, upper, vectors + w * (upper - vectors))
        vectors = torch.where((idx >= 0)[..., None], vectors, 0.0)
        return torch.movedim(self._combine(vectors), -1, self.feature_axis)

    def _combine(self, parts: torch.Tensor) -> torch.Tensor:
        """``(..., M, D')`` per-codebook vectors -> ``(..., D)`` (concatenation)."""
        return parts.reshape(*parts.shape[:-2], self.dim)

    def extra_repr(self) -> str:
        parts = [f"num_codes={self.num_codes}", f"dim={self.dim}"]
        if self.layout != "single":
            parts.insert(0, f"num_codebooks={self.num_codebooks}")
            parts.append(f"space_filling={self.space_filling}")
        parts.append(f"noise_std={self.noise_std:g}")
        if self.replacement_iters is not None or not self.space_filling:
            parts.append(f"replacement_iters={self.replacement_iters}")
            if self.replacement_iters is not None:
                parts += [
                    f"discard_threshold={self.discard_threshold:g}",
                    f"perturb_eps={self.perturb_eps:g}",
                ]
        if self.space_filling:
            parts += [f"skip_iters={self.skip_iters}", f"avg_iters={self.avg_iters}"]
        if self.feature_axis != -1:
            parts.append(f"feature_axis={self.feature_axis}")
        if self.chunk_size is not None:
            parts.append(f"chunk_size={self.chunk_size}")
        return ", ".join(parts)
