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
) -> dict[str, float]:
    """Median seconds per call of each case, measured round-robin.

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
    return {name: statistics.median(v) for name, v in samples.items()}
