"""The rows an SF torch layer keeps during its warm-up (its warm-up store).

The buffer holds the latents of the last ``avg_iters`` warm-up calls only, as
detached tensors in call order, together with each row's validity; masked and non-finite rows
are stored as zeros and excluded by the mask, so no shape depends on data. It is emptied once
the codebooks are initialised, and it travels in the layer's ``state_dict`` (extra state) so a
checkpoint taken mid-warm-up resumes exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from diveq.backends.torch._distributed import gather_calls

__all__ = ["WarmupBuffer"]


class WarmupBuffer:
    """Latent rows ``(N, M, D')`` (one slice per codebook) and their validity ``(N,)``."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []
        self.valid: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, rows: torch.Tensor, valid: torch.Tensor) -> WarmupBuffer:
        """Keep one call's latents (detached) and row validity."""
        self.rows.append(rows.detach())
        self.valid.append(valid.detach())
        return self

    def clear(self) -> WarmupBuffer:
        """Free the kept rows."""
        self.rows, self.valid = [], []
        return self

    def state(self) -> dict[str, Any]:
        """What goes into the layer's extra state (lists of tensors, picklable)."""
        return {"warmup_rows": list(self.rows), "warmup_valid": list(self.valid)}

    def load(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state`."""
        self.rows = list(state.get("warmup_rows", []))
        self.valid = list(state.get("warmup_valid", []))

    def rows_and_valid(
        self, like: torch.Tensor, group: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All kept rows ``(R, M, D')`` and their validity ``(R,)`` on the device of ``like``.

        With a process ``group`` (data-parallel training) the rows of all its members, ordered
        by call, then rank, then row, so every member initialises the same codebooks.
        """
        if group is not None:
            return gather_calls(self.rows, self.valid, group, like.device)
        if not self.rows:
            shape = (0, like.shape[0], like.shape[-1])
            return like.new_zeros(shape), torch.zeros(0, dtype=torch.bool, device=like.device)
        rows = torch.cat(self.rows).to(device=like.device)
        return rows, torch.cat(self.valid).to(device=like.device)
