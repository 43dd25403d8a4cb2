"""The rows an SF torch layer keeps during its warm-up (its warm-up store).

A fixed-capacity buffer ``(S P, M, D')`` with a validity mask ``(S P,)``: one slot of ``P`` rows
per kept call (``S = spec.warmup_slots``), in call order, the slot of call ``c`` being
``c - (skip_iters - S)``. ``P`` is the largest row count seen: the buffer is allocated at the
first call that needs it and grows (a shape decision, so also under ``torch.compile``, where a
new batch shape recompiles anyway) when a call brings more rows. Masked and non-finite rows are
stored as zeros and marked invalid, so no shape depends on data; slot padding is invalid too.

Eagerly the layer knows the call on the host and writes the slot directly; a compiled call
writes every call, masked (:meth:`WarmupStore.collect` with a 0-d call tensor), so the store
never decides control flow. The buffer is released (``None``) once the codebooks are
initialised, when the host knows it; it travels in the layer's ``state_dict`` (extra state) so a
checkpoint taken mid-warm-up resumes exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from diveq._layer_spec import LayerSpec
from diveq.backends.torch._distributed import gather_calls
from diveq.core import warmup_collects

__all__ = ["WarmupStore"]


class WarmupStore:
    """Latent rows ``(S P, M, D')`` (one slice per codebook) and their validity ``(S P,)``.

    ``rows`` and ``valid`` are ``None`` before the first kept call and after the warm-up init
    (``released``).
    """

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self.slots = spec.warmup_slots
        self.rows: torch.Tensor | None = None
        self.valid: torch.Tensor | None = None
        self.released = self.slots == 0

    @property
    def per_call(self) -> int:
        """Rows per slot ``P`` (0 before allocation)."""
        return 0 if self.rows is None else int(self.rows.shape[0]) // self.slots

    def reserve(self, latents: torch.Tensor) -> None:
        """Allocate, or grow to, slots of at least ``latents.shape[0]`` rows, in the dtype and on
        the device of ``latents`` ``(N, M, D')``; kept rows stay in their slots."""
        n, width = int(latents.shape[0]), max(int(latents.shape[0]), 1)
        if self.rows is not None and n <= self.per_call:
            return
        rows = latents.new_zeros((self.slots, width, *latents.shape[1:]))
        valid = torch.zeros((self.slots, width), dtype=torch.bool, device=latents.device)
        if self.rows is not None and self.valid is not None:
            old = self.per_call
            rows[:, :old] = self.rows.view(self.slots, old, *self.rows.shape[1:])
            valid[:, :old] = self.valid.view(self.slots, old)
        self.rows, self.valid = rows.flatten(0, 1), valid.flatten()

    def collect(self, call: Any, latents: torch.Tensor, valid: torch.Tensor) -> WarmupStore:
        """Keep one call's latents ``(N, M, D')`` (invalid rows already zero) and validity.

        ``call`` is a host int (eager: the layer calls this only on a kept call) or a 0-d
        tensor (compiled: every call, written only when :func:`warmup_collects` holds).
        """
        self.reserve(latents)
        assert self.rows is not None and self.valid is not None
        p, n = self.per_call, int(latents.shape[0])
        rows = latents.to(self.rows.dtype)
        pad = torch.zeros(p - n, dtype=torch.bool, device=valid.device)
        ok = torch.cat([valid, pad])
        first = self.spec.skip_iters - self.slots
        if isinstance(call, int):
            start = (call - first) * p
            self.rows[start : start + n] = rows
            if n < p:
                self.rows[start + n : start + p] = 0
            self.valid[start : start + p] = ok
            return self
        rows = torch.cat([rows, rows.new_zeros((p - n, *rows.shape[1:]))])
        slot = torch.clamp(call - first, 0, self.slots - 1)
        index = slot * p + torch.arange(p, device=self.valid.device)
        keep = warmup_collects(call, self.spec.skip_iters, self.spec.avg_iters)
        old_rows, old_ok = self.rows.index_select(0, index), self.valid.index_select(0, index)
        self.rows.index_copy_(0, index, torch.where(keep, rows, old_rows))
        self.valid.index_copy_(0, index, torch.where(keep, ok, old_ok))
        return self

    def release(self) -> WarmupStore:
        """Free the kept rows: the warm-up init has happened."""
        self.rows, self.valid, self.released = None, None, True
        return self

    def forget(self, initialised: Any) -> None:
        """Compiled calls: mark every row invalid where ``initialised`` (0-d bool) holds."""
        if self.valid is not None and not isinstance(initialised, bool):
            self.valid.logical_and_(~initialised)

    def rows_and_valid(
        self, dtype: torch.dtype, group: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All kept rows ``(R, M, D')`` and their validity ``(R,)`` (none kept: ``R = 0`` rows of
        ``dtype``).

        With a process ``group`` (data-parallel training) the rows of all its members, ordered
        by call, then rank, then row, so every member initialises the same codebooks.
        """
        if self.rows is None or self.valid is None:
            shape = (0, self.spec.num_codebooks, self.spec.width)
            return torch.zeros(shape, dtype=dtype), torch.zeros(0, dtype=torch.bool)
        if group is not None:
            p = self.per_call
            rows = list(self.rows.view(self.slots, p, *self.rows.shape[1:]).unbind(0))
            valid = list(self.valid.view(self.slots, p).unbind(0))
            return gather_calls(rows, valid, group, self.rows.device)
        return self.rows, self.valid

    def apply(self, fn: Any) -> None:
        """Apply a module's ``_apply`` function (``.to()``, ``.cuda()``) to the kept rows."""
        if self.rows is not None and self.valid is not None:
            self.rows, self.valid = fn(self.rows), fn(self.valid)

    def state(self) -> dict[str, Any]:
        """What goes into the layer's extra state."""
        return {"warmup_rows": self.rows, "warmup_valid": self.valid}

    def load(self, state: dict[str, Any], calls: int) -> None:
        """Restore :meth:`state` after ``calls`` train-mode calls; format-1 states (lists of
        per-call rows in call order) are laid out into slots."""
        rows, valid = state.get("warmup_rows"), state.get("warmup_valid")
        self.rows = self.valid = None
        self.released = self.slots == 0 or calls >= self.spec.skip_iters - 1
        if self.released:
            return
        if isinstance(rows, list):
            first = self.spec.skip_iters - self.slots
            for c, (r, v) in enumerate(zip(rows, valid or [], strict=True)):
                self.collect(first + c, r, v.to(torch.bool))
        elif rows is not None and valid is not None:
            self.rows, self.valid = rows, valid.to(torch.bool)
