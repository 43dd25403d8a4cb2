"""Intervals and paired tests for the study's tables (Student's t, as the seeds are few)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Paired", "Summary", "paired", "summary"]


@dataclass(frozen=True)
class Summary:
    """Mean of ``n`` values and the half-width of its 95 % t interval (NaN for ``n < 2``)."""

    n: int
    mean: float
    half: float

    def cell(self, digits: int) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1 or not math.isfinite(self.half):
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f}"


@dataclass(frozen=True)
class Paired:
    """Mean difference ``a - b`` over ``n`` shared seeds, its 95 % t interval, t and p
    (paired t-test, two-sided)."""

    n: int
    mean: float
    half: float
    t: float
    p: float

    def cell(self, digits: int) -> str:
        if self.n < 2:
            return "-"
        if self.mean == 0 and self.half == 0:
            return f"0 (identical in all {self.n} pairs)"
        return f"{self.mean:+.{digits}f} ± {self.half:.{digits}f} (t={self.t:.1f}, p={self.p:.2g})"


def summary(values: Sequence[float]) -> Summary:
    """:class:`Summary` of the finite ``values``."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if x.size == 0:
        return Summary(0, math.nan, math.nan)
    if x.size == 1:
        return Summary(1, float(x[0]), math.nan)
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return Summary(int(x.size), float(x.mean()), float(half))


def paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    """:class:`Paired` over the seeds both ``a`` and ``b`` (seed -> value) have."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    if d.size < 2:
        return Paired(int(d.size), math.nan, math.nan, math.nan, math.nan)
    s = summary(list(d))
    sd = d.std(ddof=1)
    if sd == 0 and d.mean() == 0:  # identical results: no evidence of a difference
        return Paired(int(d.size), 0.0, 0.0, 0.0, 1.0)
    t = float(d.mean() / (sd / math.sqrt(d.size))) if sd > 0 else math.copysign(math.inf, d.mean())
    p = float(2 * stats.t.sf(abs(t), d.size - 1)) if math.isfinite(t) else 0.0
    return Paired(int(d.size), s.mean, s.half, t, p)
