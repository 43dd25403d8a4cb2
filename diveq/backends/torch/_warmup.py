"""The rows an SF layer keeps during its warm-up, and the initial codebooks made from them.

The buffer holds the latents of the last ``avg_iters`` warm-up calls only (SPEC section 7), as
detached tensors in call order, together with each row's validity; masked and non-finite rows
are stored as zeros and excluded by the mask, so no shape depends on data. It is emptied once
the codebooks are initialised, and it travels in the layer's ``state_dict`` (extra state) so a
checkpoint taken mid-warm-up resumes exactly.
"""

from __future__ import annotations

from typing import Any

import torch

import diveq.core as core
from diveq.backends.torch._distributed import gather_calls

__all__ = ["WarmupBuffer"]


class WarmupBuffer:
    """Latent rows ``(N, M, D')`` (one slice per codebook) and their validity ``(N,)``."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []
        self.valid: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, rows: torch.Tensor, valid: torch.Tensor) -> None:
        """Keep one call's latents (detached) and row validity."""
        self.rows.append(rows.detach())
        self.valid.append(valid.detach())

    def clear(self) -> None:
        """Free the kept rows."""
        self.rows, self.valid = [], []

    def state(self) -> dict[str, Any]:
        """What goes into the layer's extra state (lists of tensors, picklable)."""
        return {"warmup_rows": list(self.rows), "warmup_valid": list(self.valid)}

    def load(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state`."""
        self.rows = list(state.get("warmup_rows", []))
        self.valid = list(state.get("warmup_valid", []))

    def codebooks(self, num_codes: int, like: torch.Tensor, group: Any = None) -> torch.Tensor:
        """Initial codebooks ``(M, K, D')``: codeword ``j`` of book ``m`` is the mean of the
        valid rows ``[j h, (j+1) h)`` of slice ``m`` (:func:`diveq.core.warmup_codebook`).

        Computed in at least float32 on the device of ``like`` and returned in its dtype. Counts
        the valid rows once on the host (one synchronisation per training run). With a process
        ``group`` (data-parallel training) the rows of all its members are used, ordered by
        call, then rank, then row, so every member computes the same codebooks.

        Raises
        ------
        ValueError
            If fewer than ``num_codes`` valid rows were kept.
        """
        work = torch.promote_types(like.dtype, torch.float32)
        if group is not None:
            rows, valid = gather_calls(self.rows, self.valid, group, like.device)
            rows = rows.to(dtype=work)
        elif self.rows:
            rows = torch.cat(self.rows).to(device=like.device, dtype=work)
            valid = torch.cat(self.valid).to(device=like.device)
        else:
            rows = like.new_zeros((0, 1, 1), dtype=work)
            valid = torch.zeros(0, dtype=torch.bool, device=like.device)
        count = int(valid.sum())
        if count < num_codes:
            raise ValueError(
                f"SF warm-up needs at least K = {num_codes} valid rows to initialise the "
                f"codebook; the last {len(self.rows)} warm-up calls kept {count} valid rows of "
                f"{rows.shape[0]}: raise avg_iters or the batch size, or mask out fewer rows"
            )
        books = [
            core.warmup_codebook(rows[:, m, :], num_codes, valid=valid)
            for m in range(rows.shape[1])
        ]
        return torch.stack(books).to(like.dtype)
