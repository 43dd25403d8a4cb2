"""Code usage and dead-code replacement for ``M`` codebooks at once, on torch tensors.

Thin wrappers over :func:`diveq.core.update_usage` and :func:`diveq.core.replace_dead_codes`
(which work on one codebook) that draw on the codebooks' device and never synchronise. Given a
process ``group`` (data-parallel training) the per-call counts are summed over its members
before they are added, and the new codebooks are broadcast from the group's rank 0.
"""

from __future__ import annotations

from typing import Any

import torch

import diveq.core as core
from diveq.backends.torch._distributed import all_reduce_sum, broadcast_from_first
from diveq.backends.torch._functions import sample
from diveq.core._state import accumulate_usage

__all__ = ["add_usage", "replace_dead"]


def add_usage(
    hits: torch.Tensor,
    calls_used: torch.Tensor,
    idx: torch.Tensor,
    k: int,
    *,
    group: Any = None,
) -> None:
    """Count one call's indices ``(N, M)`` (``-1`` ignored) into counters ``(M, K)`` in place.

    The ``M`` codebooks are counted in one pass as ``M K`` bins (index ``k`` of book ``m`` is
    bin ``m K + k``). With a process ``group`` the call's counts are first summed over its
    members (one all-reduce), so ``calls_used`` counts a code used on any member.
    """
    m = idx.shape[1]
    offsets = torch.arange(m, device=idx.device, dtype=idx.dtype) * k
    flat = torch.where(idx >= 0, idx + offsets, -1)
    counts = core.code_usage(flat, m * k)
    if group is not None:
        all_reduce_sum(counts, group)
    new_hits, new_used = accumulate_usage(hits.reshape(-1), calls_used.reshape(-1), counts)
    hits.copy_(new_hits.view_as(hits))
    calls_used.copy_(new_used.view_as(calls_used))


def replace_dead(
    books: torch.Tensor,
    hits: torch.Tensor,
    calls_used: torch.Tensor,
    *,
    replacement_iters: int,
    discard_threshold: float,
    perturb_eps: float,
    generator: torch.Generator | None,
    group: Any = None,
) -> torch.Tensor:
    """New codebooks ``(M, K, D')``: each book's dead codes replaced by live donors.

    The uniform and normal draws come from ``generator`` on the device of ``books``. With a
    process ``group`` every member draws and computes as usual (so generators advance alike)
    and the result of the group's rank 0 is then broadcast: all members write the same rows.
    """
    m, k, w = books.shape
    uniform, noise = sample(generator, [("uniform", (m, k)), ("normal", (m, k, w))], books)
    hits, calls_used = hits.view(m, k), calls_used.view(m, k)
    new = [
        core.replace_dead_codes(
            books[j],
            hits[j],
            calls_used[j],
            replacement_iters=replacement_iters,
            discard_threshold=discard_threshold,
            perturb_eps=perturb_eps,
            uniform=uniform[j],
            noise=noise[j],
        )[0]
        for j in range(m)
    ]
    out = torch.stack(new)
    if group is not None:
        broadcast_from_first(out, group)
    return out
