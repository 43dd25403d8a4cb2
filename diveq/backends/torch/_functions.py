"""The functional API of the torch backend: :mod:`diveq.core` bound to torch.

Missing draws are sampled with ``torch.randn`` / ``torch.rand`` from the caller's
``generator`` (``None``: torch's default generator) on the device of ``z``, so nothing round
trips through the host. Stop-gradient is :meth:`torch.Tensor.detach`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from diveq.core._bind import bind

__all__ = ["FUNCTIONS", "draw_dtype", "sample"]

_DOC = """``{name}`` for torch tensors (any device, any floating dtype).

Semantics, formulas and gradients: :func:`diveq.reference.{name}` (the normative NumPy
reference); this function computes the same thing with autograd support. float16/bfloat16
inputs are searched in float32 and the outputs keep the dtype of ``z``.

Stochastic functions take a keyword ``generator`` (:class:`torch.Generator` or ``None`` for
torch's default generator, as in :func:`torch.randn`). It is used only for the draws not given
explicitly (``noise=``, ``dither=``), which are sampled on the device of ``z``; pass a
generator that lives on that device.
"""


def draw_dtype(like: torch.Tensor) -> torch.dtype:
    """dtype of sampled draws: that of ``like``, at least float32 (the core's work dtype)."""
    return torch.promote_types(like.dtype, torch.float32)


def sample(
    rng: Any,
    requests: list[tuple[str, tuple[int, ...]]],
    like: Any,
) -> list[Any]:
    """One standard-normal (``"normal"``) or ``[0, 1)`` (``"uniform"``) tensor per request.

    Drawn on ``like.device``, in float32 or wider, from the :class:`torch.Generator` ``rng``
    (``None``: torch's default generator); never synchronises.
    """
    dtype = draw_dtype(like)
    out = []
    for kind, shape in requests:
        draw = torch.randn if kind == "normal" else torch.rand
        out.append(draw(shape, generator=rng, device=like.device, dtype=dtype))
    return out


FUNCTIONS: dict[str, Callable[..., Any]] = bind(
    module="diveq.backends.torch",
    rng_name="generator",
    sample=sample,
    stop_gradient=torch.Tensor.detach,
    doc=_DOC,
)
