"""Interleaved timing: every case runs once per round, so drift and load hit all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(
    cases: dict[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 2,
    sync: Callable[[], object] = lambda: None,
) -> dict[str, list[float]]:
    """Seconds per call of each case, one sample per round, measured round-robin.

    ``sync`` waits for queued device work (e.g. ``torch.cuda.synchronize``) before the clock is
    read, so asynchronous launches are timed to completion.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - start)
    return samples


def median(samples: list[float]) -> float:
    """The median of one case's samples."""
    return statistics.median(samples)


def ratio(case: list[float], base: list[float]) -> tuple[float, float, float]:
    """``case / base`` per round: the median and the quartiles (the spread under load).

    Both ran in the same rounds, so a slow round slows both and the per-round ratio is steadier
    than the ratio of the medians.
    """
    per_round = sorted(a / b for a, b in zip(case, base, strict=True))
    if len(per_round) < 2:
        return per_round[0], per_round[0], per_round[0]
    q1, mid, q3 = statistics.quantiles(per_round, n=4, method="inclusive")
    return mid, q1, q3
