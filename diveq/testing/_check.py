"""``check_backend``: run the whole contract against one implementation module."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from diveq._ops import OPS
from diveq.testing._adapters import Adapter, adapter_for
from diveq.testing._check_ema import check_ema
from diveq.testing._properties import (
    check_commitment,
    check_edge_values,
    check_empty,
    check_errors,
    check_forward,
    check_gradient,
    check_sampling,
    check_usage,
)

__all__ = ["Report", "check_backend"]


@dataclass
class Report:
    """What :func:`check_backend` ran: one row per (property, function, dtype)."""

    backend: str
    rows: list[tuple[str, str, str, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Total time spent."""
        return sum(r[3] for r in self.rows)

    def table(self) -> str:
        """A plain-text summary: checks per property and time."""
        lines = [f"{self.backend}: {len(self.rows)} checks passed in {self.seconds:.1f} s"]
        kinds: dict[str, int] = {}
        for prop, *_ in self.rows:
            kinds[prop] = kinds.get(prop, 0) + 1
        lines += [f"  {prop:<10} {n:>3} checks" for prop, n in kinds.items()]
        return "\n".join(lines)


def check_backend(
    module: ModuleType | str,
    *,
    adapter: Adapter | None = None,
    jit: bool = False,
    dtypes: tuple[str, ...] = ("float64", "float32"),
    max_examples: int | None = 20,
) -> Report:
    """Run the whole contract against an implementation module.

    Every public function (:data:`~diveq.testing.OPS`) is compared with :mod:`diveq.reference` on
    hypothesis-generated, well-separated inputs with identical explicit draws: forward values,
    indices (exactly) and weights, and -- for differentiable backends -- gradients with respect
    to ``z`` and the codebook(s). The documented errors, empty input and sampling are
    checked too.

    Parameters
    ----------
    module : module or str
        The implementation, e.g. ``diveq.backends.torch`` or ``"diveq.core"``.
    adapter : Adapter, optional
        How to convert, call and differentiate; looked up from ``module`` when omitted.
    jit : bool, default False
        For JAX: run every call and VJP under ``jax.jit``.
    dtypes : tuple of str, default ("float64", "float32")
        Floating dtypes to test.
    max_examples : int or None, default 20
        Hypothesis examples per property; ``None`` uses the active hypothesis profile.

    Returns
    -------
    Report
        The checks that ran (all passed).

    Raises
    ------
    AssertionError
        On the first deviation from the contract, with the failing input.

    Examples
    --------
    >>> from diveq.testing import check_backend
    >>> report = check_backend("diveq.core", dtypes=("float64",), max_examples=3)
    >>> report.backend
    'core-numpy'
    """
    adapter = adapter or adapter_for(module, jit=jit)
    report = Report(adapter.name)

    def timed(prop: str, name: str, dtype: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        fn(*args, **kwargs)
        report.rows.append((prop, name, dtype, time.perf_counter() - start))

    for op in OPS:
        for dtype in dtypes:
            timed(
                "forward",
                op.name,
                dtype,
                check_forward,
                adapter,
                op,
                dtype,
                max_examples=max_examples,
            )
            if adapter.differentiable and op.train:
                timed(
                    "gradient",
                    op.name,
                    dtype,
                    check_gradient,
                    adapter,
                    op,
                    dtype,
                    max_examples=max_examples,
                )
        timed("errors", op.name, "-", check_errors, adapter, op)
        timed("edge values", op.name, "-", check_edge_values, adapter, op)
        timed("empty", op.name, "-", check_empty, adapter, op)
        if adapter.samples and op.stochastic:
            timed("sampling", op.name, "-", check_sampling, adapter, op)
    for dtype in dtypes:
        timed(
            "commitment",
            "commitment_loss",
            dtype,
            check_commitment,
            adapter,
            dtype,
            max_examples=max_examples,
        )
    timed("usage", "code_usage/perplexity", "-", check_usage, adapter, max_examples=max_examples)
    for dtype in dtypes:
        timed("ema", "ema_*", dtype, check_ema, adapter, dtype, max_examples=max_examples)
    return report
