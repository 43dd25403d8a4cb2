"""When the layers' training state changes, as pure functions of the call count.

``call`` is the 1-based index of the current train-mode call. Every function works on Python
ints (the torch layers keep the count on the host, so no device sync) and on integer arrays (the
JAX layers keep it in the state pytree, so a whole training step jits).
"""

from __future__ import annotations

from typing import Any

__all__ = ["replacement_due", "warmup_collects", "warmup_initialises", "warmup_quantizes"]


def replacement_due(call: Any, replacement_iters: int | None) -> Any:
    """Whether dead-code replacement runs after this call (end of a window)."""
    if replacement_iters is None:
        return False
    return call % replacement_iters == 0


def warmup_quantizes(call: Any, skip_iters: int) -> Any:
    """SF quantisation runs from call ``skip_iters`` on (from the first when it is 0 or 1)."""
    return call >= skip_iters


def warmup_collects(call: Any, skip_iters: int, avg_iters: int) -> Any:
    """Rows of calls ``skip_iters - avg_iters`` to ``skip_iters - 1`` are kept for the init."""
    return (call >= skip_iters - avg_iters) & (call < skip_iters)


def warmup_initialises(call: Any, skip_iters: int) -> Any:
    """At call ``skip_iters - 1`` (if >= 1) the codebook becomes the chunk means."""
    return call == skip_iters - 1
