"""Code usage and dead-code replacement for ``M`` codebooks at once, on torch tensors.

Thin wrappers over :func:`diveq.core.update_usage` and :func:`diveq.core.replace_dead_codes`
(which work on one codebook) that draw on the codebooks' device and never synchronise.
"""

from __future__ import annotations

import torch

import diveq.core as core
from diveq.backends.torch._functions import sample

__all__ = ["add_usage", "replace_dead"]


def add_usage(hits: torch.Tensor, calls_used: torch.Tensor, idx: torch.Tensor, k: int) -> None:
    """Count one call's indices ``(N, M)`` (``-1`` ignored) into counters ``(M, K)`` in place.

    The ``M`` codebooks are counted in one pass as ``M K`` bins (index ``k`` of book ``m`` is
    bin ``m K + k``).
    """
    m = idx.shape[1]
    offsets = torch.arange(m, device=idx.device, dtype=idx.dtype) * k
    flat = torch.where(idx >= 0, idx + offsets, -1)
    new_hits, new_used = core.update_usage(hits.reshape(-1), calls_used.reshape(-1), flat, m * k)
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
) -> torch.Tensor:
    """New codebooks ``(M, K, D')``: each book's dead codes replaced by live donors.

    The uniform and normal draws come from ``generator`` on the device of ``books``.
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
    return torch.stack(new)
