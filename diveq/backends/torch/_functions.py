"""The functional API of the torch backend: :mod:`diveq.core` bound to torch.

Missing draws are sampled with ``torch.randn`` / ``torch.rand`` from the caller's
``generator`` (``None``: torch's default generator) on the device of ``z``, so nothing round
trips through the host. Stop-gradient is :meth:`torch.Tensor.detach`; the estimators' step runs
as one autograd Function (:mod:`diveq.backends.torch._reparam`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat.torch as xp
import torch

from diveq.backends.torch._reparam import reparam
from diveq.core._bind import bind
from diveq.core._faces import Idiom
from diveq.core._fused import route
from diveq.core._gumbel import gumbel_from_uniform

__all__ = ["FUNCTIONS", "IDIOM", "draw_dtype", "sample"]

IDIOM = Idiom(
    module="diveq.backends.torch",
    array="torch.Tensor",
    rng="generator: torch.Generator | None",
    rng_doc="Source of the draws not given (``None``: torch's default generator, as in "
    ":func:`torch.randn`), which are sampled on the device of ``z``: pass a generator that "
    "lives there.",
    note="The torch version of :func:`diveq.reference.{name}`, for any device, with autograd.",
    example=("torch.tensor", "generator=torch.Generator().manual_seed(0)"),
)


def draw_dtype(like: torch.Tensor) -> torch.dtype:
    """dtype of sampled draws: that of ``like``, at least float32 (the core's work dtype)."""
    return torch.promote_types(like.dtype, torch.float32)


def sample(
    rng: Any,
    requests: list[tuple[str, tuple[int, ...]]],
    like: Any,
) -> list[Any]:
    """One standard-normal (``"normal"``), ``[0, 1)`` (``"uniform"``) or standard Gumbel
    (``"gumbel"``) tensor per request.

    Drawn on ``like.device``, in float32 or wider, from the :class:`torch.Generator` ``rng``
    (``None``: torch's default generator); never synchronises.
    """
    dtype = draw_dtype(like)
    # no `generator=None`: under torch.compile that overload refuses symbolic (dynamic) shapes
    kw = {} if rng is None else {"generator": rng}
    out = []
    for kind, shape in requests:
        draw = torch.randn if kind == "normal" else torch.rand
        x = draw(shape, device=like.device, dtype=dtype, **kw)
        out.append(gumbel_from_uniform(xp, x) if kind == "gumbel" else x)
    return out


# chunk_size="fused" / "fused-interpret" opt into the Triton kernels (docs: Performance).
FUNCTIONS: dict[str, Callable[..., Any]] = route(
    bind(IDIOM, sample=sample, stop_gradient=torch.Tensor.detach, reparam=reparam),
    "diveq.backends.torch._triton_search",
)
