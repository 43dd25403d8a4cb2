"""The torch side of every layer: storage (parameter, buffers, warm-up rows), the call count,
data-parallel collectives and the generator. The layer logic itself is the core's
(:mod:`diveq.core._layer_step`, :mod:`diveq.core._layer_rows`), shared with the JAX layers.

The count of train-mode calls is a device buffer (``calls``), the source of truth. Eagerly the
layer also keeps a host mirror of it, advanced only by the layer (and re-read after
``load_state_dict`` or a compiled call), so the schedule (replacement windows, SF warm-up) picks
its branches on the host at no device sync. Under ``torch.compile`` the same steps run on the
device: the schedule's predicates are 0-d tensors, replacement and the SF phase are ``torch.where``
masks, the warm-up init a ``torch.cond``, and the warm-up rows a fixed-capacity buffer written
in place, so a training step compiles to one graph. Internally the codebooks are seen as
``(M, K, D')`` and per-row codes as ``(N, M)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import array_api_compat.torch as xp
import torch
from torch import nn
from torch.utils._pytree import tree_map

from diveq._checkpoint import check_checkpoint, describe
from diveq._layer_spec import LayerSpec
from diveq._types import LayerDraws, LayerOutput, Quantized, SFLayerOutput, SFQuantized
from diveq.backends.torch._distributed import active_group, all_reduce_sum, broadcast_from_first
from diveq.backends.torch._functions import FUNCTIONS, sample
from diveq.backends.torch._warmup import WarmupStore
from diveq.core import _layer_rows as rows_
from diveq.core import _layer_step as step
from diveq.core import warmup_quantizes

__all__ = ["Quantizer"]


#: Options fixed at construction: they set the shapes of the parameter and buffers.
_SHAPING = ("layout", "num_codebooks", "num_codes", "dim", "space_filling")
#: Buffers of the official ``diveq`` 0.1.3 layers: their checkpoints need a conversion.
_OFFICIAL_KEYS = ("iter_counter", "codebook_usage")


def _chunk_size(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"`chunk_size` must be None or an int >= 1; got {value!r}")
    return value


def _known_all(mask: torch.Tensor) -> bool:
    """Whether ``mask`` is all True, asked only where that costs no device sync or graph break
    (eager, on a CPU); elsewhere ``False``, and the layer masks."""
    if mask.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    return bool(mask.all())


def _require_rows(count: torch.Tensor, message: Any, num_codes: int) -> None:
    if torch.compiler.is_compiling():
        return  # a compiled init keeps the codebooks instead (documented)
    found = int(count)  # one host sync per training run (at the warm-up init)
    if found < num_codes:
        raise ValueError(message(found))


def _where_cond(pred: torch.Tensor, if_true: Any, if_false: Any, operand: Any) -> Any:
    """``cond`` on a 0-d tensor by masking: both branches run, ``torch.where`` picks (what
    both return as the same object, e.g. a store written in place, is passed on)."""
    a, b = if_true(operand), if_false(operand)
    return tree_map(lambda u, v: u if u is v else torch.where(pred, u, v), a, b)


def _lazy_cond(pred: torch.Tensor, if_true: Any, if_false: Any, operand: tuple) -> tuple:
    """``cond`` by ``torch.cond``: only the taken branch runs. The tensors of ``operand`` go
    through it (cloned out: ``torch.cond`` forbids aliasing); other items (the warm-up store)
    are read by the branches and passed on unchanged."""
    where = [i for i, a in enumerate(operand) if isinstance(a, torch.Tensor)]

    def run(fn: Any) -> Any:
        def body(*tensors: torch.Tensor) -> tuple:
            full = list(operand)
            for i, t in zip(where, tensors, strict=True):
                full[i] = t
            out = fn(tuple(full))
            return tuple(out[i].clone() for i in where)

        return body

    # cloned in too: torch.cond also forbids inputs that alias each other (e.g. the codebook
    # parameter a branch reads and the detached view of it in ``operand``)
    got = torch.cond(pred, run(if_true), run(if_false), tuple(operand[i].clone() for i in where))
    out = list(operand)
    for i, t in zip(where, got, strict=True):
        out[i] = t
    return tuple(out)


def _in_place(collective: Any, group: Any, tensor: torch.Tensor) -> torch.Tensor:
    """Run an in-place collective over ``group`` (none without one); return the tensor."""
    if group is not None:
        collective(tensor, group)
    return tensor


def _bincount(x: torch.Tensor, length: int) -> torch.Tensor:
    return torch.bincount(x, minlength=length)


class Quantizer(nn.Module):
    """Base class of the torch layers (not public): see :class:`diveq.backends.torch.DiVeQ`."""

    hits: torch.Tensor
    calls_used: torch.Tensor
    calls: torch.Tensor

    def __init__(
        self,
        spec: LayerSpec,
        *,
        chunk_size: int | None,
        device: Any,
        dtype: torch.dtype | None,
        process_group: Any = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        # Data-parallel synchronisation group (None: the default group, when initialised).
        self.process_group = process_group
        self.chunk_size = _chunk_size(chunk_size)
        param = nn.Parameter(torch.empty(spec.book_shape, device=device, dtype=dtype))
        self.register_parameter(self._param_name, param)
        counters = spec.book_shape[:-1]
        self.register_buffer("hits", torch.zeros(counters, dtype=torch.int64, device=device))
        self.register_buffer("calls_used", torch.zeros_like(self.hits))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64, device=device))
        self._calls: int | None = 0  # host mirror of `calls` (None: re-read it)
        self._warmup = WarmupStore(spec)
        self._sync_phase()
        self.reset_parameters()

    # ------------------------------------------------------------------ options and state
    def __getattr__(self, name: str) -> Any:
        if name in LayerSpec.__dataclass_fields__ and "spec" in self.__dict__:
            return getattr(self.__dict__["spec"], name)
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        spec = self.__dict__.get("spec")
        if spec is None or name not in LayerSpec.__dataclass_fields__:
            super().__setattr__(name, value)
        elif name in _SHAPING:
            raise AttributeError(
                f"`{name}` shapes the layer's state and cannot change; got {value!r}"
            )
        else:  # checked again, as in the constructor
            super().__setattr__("spec", dataclasses.replace(spec, **{name: value}))
            self._sync_phase()

    @property
    def _param_name(self) -> str:
        return "codebooks" if self.spec.composite else "codebook"

    def _param(self) -> torch.Tensor:
        param: torch.Tensor = getattr(self, self._param_name)
        return param

    def _books(self) -> torch.Tensor:
        """The codebook(s) as ``(M, K, D')`` (a view of the parameter)."""
        s = self.spec
        return self._param().view(s.num_codebooks, s.num_codes, s.width)

    def reset_parameters(self) -> None:
        """Draw the codebook(s) from the layer's ``init`` and zero the usage counters."""
        low, high = self.spec.init_bounds
        with torch.no_grad():
            self._param().uniform_(low, high)
            self.hits.zero_()
            self.calls_used.zero_()

    @property
    def train_calls(self) -> int:
        """Number of train-mode forward calls so far (host integer; after a compiled call, one
        device read)."""
        return self._host_calls()

    @property
    def warmed_up(self) -> bool:
        """Whether the next train-mode call runs the layer's own estimator (not the warm-up)."""
        return not self._warming()

    def _host_calls(self) -> int:
        """The host mirror of ``calls``, re-read from the device when unknown."""
        if self._calls is None:
            self._calls = int(self.calls)
        return self._calls

    def _warming(self) -> bool:
        quantizes = warmup_quantizes(self._host_calls() + 1, self.spec.skip_iters)
        return self.spec.warmup and not quantizes

    def _sync_phase(self) -> None:
        """Fit the warm-up store to the schedule (options can be reassigned); kept rows stay
        when the number of slots does."""
        old, fresh = self._warmup, WarmupStore(self.spec)
        if fresh.slots and fresh.slots == old.slots:
            fresh.rows, fresh.valid = old.rows, old.valid
        fresh.released = fresh.slots == 0 or self._host_calls() >= self.spec.skip_iters - 1
        if fresh.released:
            fresh.release()
        self._warmup = fresh

    def _apply(self, fn: Any, *args: Any, **kw: Any) -> Any:
        out = super()._apply(fn, *args, **kw)
        self._warmup.apply(fn)  # the kept rows follow .to() / .cuda() (not a buffer: see Notes)
        return out

    def get_extra_state(self) -> dict[str, Any]:
        """Host-side state for ``state_dict()``: the SF warm-up rows and the layer's kind, shape
        and schedule options (checked when the state loads); the call count is the ``calls``
        buffer (``train_calls`` repeats it, so that diveq before format 2 reaches its format
        check and refuses the checkpoint clearly)."""
        calls = self._host_calls()
        return {**self._warmup.state(), "train_calls": calls, "layer": describe(self.spec)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_extra_state` (``load_state_dict``, after the buffers).

        ``load_state_dict`` has already refused (``ValueError``) a state written by a layer of
        another kind, shape or (mid-schedule) schedule; states written before diveq recorded
        the layer load unchecked.
        """
        self._calls = None
        self._warmup.load(state, self._host_calls())

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kw: Any) -> None:
        # Checked before anything is copied, so a refused checkpoint leaves the layer as it was.
        found = [k for k in _OFFICIAL_KEYS if prefix + k in state_dict]
        if found:
            raise ValueError(
                f"`{prefix}{found[0]}` is a key of the official diveq package's layers: convert "
                "the checkpoint with diveq.compat.official.convert_state_dict(state_dict, model), "
                "or load it into the diveq.compat.official classes"
            )
        extra = state_dict.get(prefix + "_extra_state")
        old = isinstance(extra, dict) and "train_calls" in extra
        if old and prefix + "calls" not in state_dict:  # (format 2 repeats train_calls)
            # Format 1 (the count in the extra state): the same state, laid out anew.
            state_dict[prefix + "calls"] = torch.tensor(int(extra["train_calls"]))
        calls = state_dict.get(prefix + "calls")
        if isinstance(extra, dict) and "layer" in extra and calls is not None:
            check_checkpoint(self.spec, extra["layer"], int(calls))
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)
        self._calls = None  # the mirror follows the loaded buffer
        self._warmup.released = self._warmup.slots == 0 or (
            self._warmup.rows is None and self._host_calls() >= self.spec.skip_iters - 1
        )

    # ------------------------------------------------------------------ the call
    def _ops(self, group: Any = None, compiling: bool = False) -> step.LayerOps:
        num_codes = self.spec.num_codes

        def function(name: str) -> Any:
            return functools.partial(FUNCTIONS[name], chunk_size=self.chunk_size)

        def clear(store: WarmupStore) -> WarmupStore:
            # compiled: inside torch.cond, which must not mutate; the layer forgets the rows after
            return store if compiling else store.release()

        return step.LayerOps(
            xp=xp,
            function=function,
            stop_gradient=torch.Tensor.detach,
            cond=_where_cond if compiling else step.python_cond,
            branch=_lazy_cond if compiling else None,
            bincount=_bincount,
            reduce_counts=functools.partial(_in_place, all_reduce_sum, group),
            broadcast_books=functools.partial(_in_place, broadcast_from_first, group),
            collect=lambda store, call, latents, valid: store.collect(call, latents, valid),
            warmup_rows=lambda store: store.rows_and_valid(self._param().dtype, group),
            clear_warmup=clear,
            require_rows=lambda count, message: _require_rows(count, message, num_codes),
            all_true=_known_all,
        )

    def _draws(
        self, generator: torch.Generator | None, rows: torch.Tensor, given: LayerDraws | None
    ) -> step.Draws:
        def sampler(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            kind = "normal" if name in ("noise", "perturbation") else "uniform"
            like = rows if name in ("noise", "dither") else self._param()
            return sample(generator, [(kind, shape)], like)[0]

        return step.Draws(self.spec, given, sampler)

    def forward(
        self,
        z: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        draws: LayerDraws | None = None,
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
            Source of the training draws not given in ``draws`` (``None``: torch's default
            generator).
        draws : diveq.LayerDraws, optional
            Explicit draws for this call (noise, dither, replacement donors and perturbation);
            with the same draws every backend and the reference layers agree.

        Returns
        -------
        LayerOutput or SFLayerOutput
            ``(values, indices, perplexity)`` (space-filling layers add ``weights``).
        """
        spec = self.spec
        rows, valid, lead = rows_.to_rows(spec, xp, z, mask)
        compiling = self.training and torch.compiler.is_compiling()
        ops = self._ops(compiling=compiling)
        books = self._books()
        if self.training:
            d = self._draws(generator, rows, draws)
            if compiling and not self._warmup.released:  # the phase, on the device
                quantizing: Any = warmup_quantizes(self.calls + 1, spec.skip_iters)
            elif compiling:
                quantizing = True
            else:
                quantizing = not self._warming()
            values, idx, weights = step.estimate(spec, ops, books, rows, valid, d, quantizing)
        else:
            values, idx, weights = step.infer(spec, ops, books, rows, valid)
        idx = torch.where(valid[:, None], idx, -1)
        counts = step.book_counts(spec, ops, idx)
        if self.training:
            counts = self._advance(rows, valid, idx, counts, d, compiling)
        perplexity = step.mean_perplexity(xp, counts)
        out = rows_.finish(spec, xp, rows, valid, lead, values, idx, weights, _known_all(valid))
        if spec.space_filling:
            return SFLayerOutput(out[0], out[1], perplexity, out[2])
        return LayerOutput(out[0], out[1], perplexity)

    @torch.no_grad()
    def _advance(
        self,
        rows: torch.Tensor,
        valid: torch.Tensor,
        idx: torch.Tensor,
        counts: torch.Tensor,
        draws: step.Draws,
        compiling: bool,
    ) -> torch.Tensor:
        """After a train-mode call: reduce the counts, then the core's state step, written back.

        Eagerly the schedule's branches are picked on the host (the mirror of ``calls``);
        compiled, they are device predicates and every write is unconditional (masked).
        """
        spec, store = self.spec, self._warmup
        group = active_group(self.process_group)  # None: single process, no collectives
        ops = self._ops(group, compiling)
        counts = ops.reduce_counts(counts)
        m, k = spec.num_codebooks, spec.num_codes
        if compiling:
            self._calls = None  # the host mirror is re-read on its next use
        calls: Any = self.calls if compiling else self._host_calls()
        if not compiling and not store.released and calls >= spec.skip_iters - 1:
            store.release()  # after compiled calls: the init has happened, free the rows
        live = spec.warmup and not store.released
        if live and compiling:
            if group is not None:
                raise NotImplementedError(
                    "torch.compile of an SF warm-up under data-parallel training is not "
                    "supported (the init gathers every worker's rows): run the first "
                    f"skip_iters - 1 = {spec.skip_iters - 1} train-mode calls eagerly"
                )
            store.reserve(rows.new_empty((rows.shape[0], m, spec.width)))
        state = step.LayerState(
            self._books().detach(), calls, self.hits.view(m, k), self.calls_used.view(m, k), store
        )
        new, events = step.advance(
            spec, ops, state, rows.detach(), valid, idx, counts, draws, warming=live
        )
        self.hits.copy_(new.hits.view_as(self.hits))
        self.calls_used.copy_(new.calls_used.view_as(self.calls_used))
        # In place on .data: the Parameter object (and any optimiser state) stays attached.
        if compiling:
            self.calls.copy_(new.calls)
            self._param().data.copy_(new.books.view_as(self._param()))
            store.forget(events.initialised)
        else:
            self.calls.add_(1)
            self._calls = new.calls
            if events.replaced or events.initialised:
                self._param().data.copy_(new.books.view_as(self._param()))
        return counts

    # ------------------------------------------------------------------ codes
    def encode(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> Quantized | SFQuantized:
        """Hard inference (as in eval mode) with the full result; changes no state.

        Parameters
        ----------
        z : torch.Tensor
            Latents, as for :meth:`forward`.
        mask : torch.Tensor of bool, optional
            As for :meth:`forward`.

        Returns
        -------
        Quantized or SFQuantized
            ``values`` and ``indices`` (space-filling layers add the segment ``weights``), as
            the eval-mode output; masked and non-finite rows keep their input, index ``-1``.
        """
        spec = self.spec
        rows, valid, lead = rows_.to_rows(spec, xp, z, mask)
        values, idx, weights = step.infer(spec, self._ops(), self._books(), rows, valid)
        out = rows_.finish(spec, xp, rows, valid, lead, values, idx, weights, _known_all(valid))
        return SFQuantized(*out) if spec.space_filling else Quantized(out[0], out[1])

    def decode(self, indices: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors for codes (the inverse of :meth:`encode`).

        Parameters
        ----------
        indices : torch.Tensor of int
            As returned in ``output.indices`` (composites: trailing axis ``M``).
        weights : torch.Tensor, optional
            Space-filling layers (required there): the segment positions ``output.weights``;
            the point is ``c_i + w (c_{i+1} - c_i)``.

        Returns
        -------
        torch.Tensor
            Vectors in the codebook dtype with the features on ``feature_axis``; rows with
            index ``-1`` decode to zeros. ``decode(*encode(z)[1:])`` equals
            ``encode(z).values`` bitwise.

        Raises
        ------
        ValueError
            On ``weights`` missing for (or given to a non-) space-filling layer, or a shape
            mismatch.
        """
        return rows_.decode(self.spec, xp, self._books(), indices, weights)

    def extra_repr(self) -> str:
        s = self.spec
        parts = [f"num_codes={s.num_codes}", f"dim={s.dim}"]
        if s.composite:
            parts.insert(0, f"num_codebooks={s.num_codebooks}")
            parts.append(f"space_filling={s.space_filling}")
        parts.append(f"noise_std={s.noise_std:g}")
        if s.replacement_iters is not None or not s.space_filling:
            parts.append(f"replacement_iters={s.replacement_iters}")
            if s.replacement_iters is not None:
                parts += [f"discard_threshold={s.discard_threshold:g}"]
                parts += [f"perturb_eps={s.perturb_eps:g}"]
        if s.space_filling:
            parts += [f"skip_iters={s.skip_iters}", f"avg_iters={s.avg_iters}"]
        if s.feature_axis != -1:
            parts.append(f"feature_axis={s.feature_axis}")
        if s.codebook_init != "symmetric":
            parts.append(f"codebook_init={s.codebook_init!r}")
        if self.chunk_size is not None:
            parts.append(f"chunk_size={self.chunk_size}")
        return ", ".join(parts)
