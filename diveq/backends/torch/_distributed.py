"""Data-parallel training state: the collectives the layers run under ``torch.distributed``.

Per-call usage counts are summed over all workers before use, replacement
writes the same rows on every worker, and the SF warm-up initialises from every worker's rows.
Each helper is a no-op path for a single process: :func:`active_group` returns ``None`` when
``torch.distributed`` is unavailable, not initialised, or the group has one member, and the
layers then run exactly the single-process code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = ["active_group", "all_reduce_sum", "broadcast_from_first", "gather_calls"]


def active_group(process_group: Any = None) -> Any:
    """The group to synchronise over (``None``: no data parallelism in use).

    ``process_group=None`` means the default (world) group. Checked on every train-mode call;
    it costs no communication.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    group = dist.group.WORLD if process_group is None else process_group
    if dist.get_world_size(group) <= 1:
        return None
    return group


def all_reduce_sum(tensor: torch.Tensor, group: Any) -> None:
    """Sum ``tensor`` over the group, in place."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)


def broadcast_from_first(tensor: torch.Tensor, group: Any) -> None:
    """Overwrite ``tensor`` on every member with that of the group's rank 0, in place."""
    dist.broadcast(tensor, src=dist.get_global_rank(group, 0), group=group)


def gather_calls(
    rows: list[torch.Tensor], valid: list[torch.Tensor], group: Any, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's kept warm-up rows, concatenated in the order call, then rank, then row.

    ``rows[c]`` ``(n_c, ...)`` and ``valid[c]`` ``(n_c,)`` are this member's rows of its
    ``c``-th kept call. Members may hold different numbers of rows per call: each call is
    padded to the largest with invalid rows (which :func:`diveq.core.warmup_codebook` drops,
    keeping the order of the valid ones). Every member returns the same tensors. One small
    host read (the row counts) per use.

    Raises
    ------
    ValueError
        If the members kept different numbers of calls (on every member alike).
    """
    calls = len(rows)
    longest = max((int(r.shape[0]) for r in rows), default=0)
    sizes = torch.tensor([calls, longest], dtype=torch.int64, device=device)
    every = [torch.empty_like(sizes) for _ in range(dist.get_world_size(group))]
    dist.all_gather(every, sizes, group=group)
    table = torch.stack(every).tolist()
    if len({c for c, _ in table}) != 1:
        raise ValueError(
            "SF warm-up: the data-parallel workers kept different numbers of warm-up calls "
            f"({[c for c, _ in table]}); every worker must make the same train-mode calls"
        )
    width = max(n for _, n in table)
    if calls == 0:
        return torch.zeros((0, 1, 1), device=device), torch.zeros(
            0, dtype=torch.bool, device=device
        )
    tail = tuple(rows[0].shape[1:])
    pad_rows = torch.zeros((calls, width, *tail), dtype=rows[0].dtype, device=device)
    pad_valid = torch.zeros((calls, width), dtype=torch.uint8, device=device)
    for c, (r, v) in enumerate(zip(rows, valid, strict=True)):
        pad_rows[c, : r.shape[0]] = r.to(device)
        pad_valid[c, : v.shape[0]] = v.to(device=device, dtype=torch.uint8)
    got_rows = [torch.empty_like(pad_rows) for _ in range(len(table))]
    got_valid = [torch.empty_like(pad_valid) for _ in range(len(table))]
    dist.all_gather(got_rows, pad_rows, group=group)
    dist.all_gather(got_valid, pad_valid, group=group)
    # (calls, ranks, width, ...) -> call-major, then rank, then row.
    all_rows = torch.stack(got_rows, dim=1).reshape(-1, *tail)
    all_valid = torch.stack(got_valid, dim=1).reshape(-1).bool()
    return all_rows, all_valid
