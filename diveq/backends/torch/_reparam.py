"""The torch backend's native DiVeQ step: :func:`diveq.core._estimators.reparam` as one
autograd Function with a hand-written backward.

The generic formulas trace some twenty element-wise passes over the ``N x D`` rows per vertex
(row scaling, norms, divisions, and autograd's replay of each). Here, per vertex ``q`` of a row
(one for DiVeQ, two for SF-DiVeQ, with weights ``w = (1 - l, l)``)::

    forward   d = q - z ;  e = d + s xi ;  r = ||d|| ;  e^ = d / r ;  u = unit(e)
              values = z + sum_j w_j r_j u_j
    backward  a_j = w_j (g . u_j) ;  dq_j = a_j e^_j ;  dz = g - sum_j dq_j

(``unit(v) = v / ||v||``, ``unit(0) = 0``: ``e^ = 0`` for ``d = 0``), the semantics of
:func:`diveq.reference.diveq` and :func:`diveq.reference.sf_diveq`. ``d`` and ``e`` share one
buffer, turned into their units in place. Every
product in either pass has a unit-vector factor, so none exceeds the values or the gradient it
builds; norms are safe by :func:`_unit_rows`.

Large steps on a CPU run in row chunks (:func:`_chunks`), and their backward recomputes each
chunk's units from the saved inputs: no ``N x D`` temporary is allocated beyond the values and
the gradients, so no fresh memory is faulted in and ``2 m`` such arrays are not kept alive
between the passes. The chunks give the same bits as one pass (every operation is row-wise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["reparam"]


def _unit_rows(v: torch.Tensor) -> torch.Tensor:
    """Overwrite each row of ``v`` ``(M, D)`` with its unit vector; return the norms ``(M, 1)``.

    One plain norm pass finds the rows whose sum of squares overflowed (``inf``: float32
    ``||v|| > 1.8e19``) or may have lost precision to underflow (``||v|| < 3e-13``, a bound with
    room for ``D`` up to ``2^22``); those rows alone are scaled by a power of two (exact) before
    the norm is taken again, so the norms and units are finite and accurate for every finite row.
    On a CPU, where there is no such row, the second pass is skipped.
    """
    info = torch.finfo(v.dtype)
    tiny = math.sqrt(info.smallest_normal / info.eps)
    half = math.frexp(info.max)[1] // 2  # ||v|| < 2^half unless the sum of squares overflowed
    up = 2.0 ** (half - 16 - math.floor(math.log2(tiny)))  # tiny rows: below 2^(half-16)
    down = 2.0 ** -(half + 16)  # entries <= max become <= 2^(half-16): D up to 2^32 fits
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    small, big = n < tiny, n == math.inf  # (a norm of 0 may be a row whose squares underflowed)
    if v.device.type == "cpu" and not torch.compiler.is_compiling():
        # No row to rescue: the second norm pass would give the same bits, so skip it.
        # (Elsewhere this test would cost a host sync.)
        if not bool((small | big).any()):
            v.mul_(n.reciprocal())
            return n
    scale = torch.ones_like(n).masked_fill_(small, up).masked_fill_(big, down)
    v.mul_(scale)
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    v.mul_(n.reciprocal().masked_fill_(n == 0, 0.0))
    return n.div_(scale)


CHUNK_ELEMENTS = 1 << 18
"""Elements (rows x ``D``) per row chunk of the step when it is chunked (~1 MiB of float32 per
temporary): the passes then run in cache and the temporaries are reused heap memory."""

WHOLE_ELEMENTS = 1 << 21
"""Up to this many elements the step runs in one chunk and the backward reuses the forward's
units. Above it, each ``N x D`` temporary would be fresh memory (a 64 MiB buffer costs some 20 ms
of page faults on a CPU) that a chunked backward avoids by recomputing its chunk's units; below
it, the recomputation cost more than it saved (measured interleaved against the one-pass step;
docs: Performance)."""


def _chunks(z: torch.Tensor) -> list[slice]:
    """Row slices of the step: one up to :data:`WHOLE_ELEMENTS`, under ``torch.compile`` (which
    fuses the passes itself) and off CPUs (a caching allocator reuses memory); else slices of
    at most :data:`CHUNK_ELEMENTS`."""
    n, d = z.shape
    if n * d <= WHOLE_ELEMENTS or z.device.type != "cpu" or torch.compiler.is_compiling():
        return [slice(0, n)]
    step = max(1, CHUNK_ELEMENTS // d)
    return [slice(lo, min(lo + step, n)) for lo in range(0, n, step)]


def _directions(
    z: torch.Tensor,
    vertices: Sequence[torch.Tensor],
    noise_std: Any,
    draws: Sequence[torch.Tensor],
    rows: slice,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the rows ``rows``: a buffer whose first ``m`` slices hold ``e^_j = unit(d_j)`` and,
    with draws, the next ``m`` hold ``u_j = unit(d_j + s xi_j)``; and the lengths ``||d_j||``
    ``(m, n, 1)``. The same operations on the same rows give the same bits in both passes."""
    m = len(vertices)
    zc = z[rows]
    buf = torch.empty((2 * m if draws else m, *zc.shape), dtype=z.dtype, device=z.device)
    for j, q in enumerate(vertices):
        torch.sub(q[rows], zc, out=buf[j])
    for j, xi in enumerate(draws):
        if isinstance(noise_std, torch.Tensor):
            torch.addcmul(buf[j], xi[rows], noise_std, out=buf[m + j])
        else:
            torch.add(buf[j], xi[rows], alpha=noise_std, out=buf[m + j])
    lengths = _unit_rows(buf.view(-1, z.shape[-1])).view(buf.shape[0], -1, 1)[:m]
    return buf, lengths


class _Step(torch.autograd.Function):
    """``z + sum_j w_j ||q_j - z|| sg(unit(q_j - z + s xi_j))`` (see the module docstring).

    Both passes walk the rows in the chunks of :func:`_chunks`. With one chunk the backward
    reuses the forward's units; with more it recomputes each chunk's units from the saved
    inputs instead of keeping ``2 m`` arrays of ``N x D`` alive between the passes.
    """

    @staticmethod
    def forward(
        z: torch.Tensor,
        lam: torch.Tensor | None,
        noise_std: Any,
        noises: Sequence[torch.Tensor | None],
        *vertices: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = len(vertices)
        draws = [xi for xi in noises if xi is not None]  # all or none
        n = z.shape[0]
        # w_j per vertex: the weight of g . unit(e_j) in the backward
        weights = z.new_ones((m, n, 1)) if lam is None else torch.stack((1.0 - lam, lam))
        values = torch.empty_like(z, memory_format=torch.contiguous_format)
        chunks = _chunks(z)
        for rows in chunks:
            buf, lengths = _directions(z, vertices, noise_std, draws, rows)
            units = buf[m:] if draws else buf
            out = values[rows]
            torch.addcmul(z[rows], units[0], weights[0, rows] * lengths[0], out=out)
            for j in range(1, m):
                out.addcmul_(units[j], weights[j, rows] * lengths[j])
        # One chunk: the backward reuses its units; more: it recomputes them chunk by chunk.
        # (torch.func wants the tensors saved for the backward returned as outputs.)
        kept = buf if len(chunks) == 1 else z.new_empty(0)
        return values, weights, kept

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        z, _, noise_std, noises, *vertices = inputs
        draws = [xi for xi in noises if xi is not None]
        _, weights, kept = output
        ctx.mark_non_differentiable(weights, kept)
        ctx.set_materialize_grads(False)
        std = [noise_std] if isinstance(noise_std, torch.Tensor) else []
        ctx.save_for_backward(z, weights, kept, *std, *draws, *vertices)
        ctx.noise_std = None if std else noise_std
        ctx.counts = len(draws), len(vertices)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        k, m = ctx.counts
        if g is None:  # the values were not used
            return (None,) * (4 + m)
        z, weights, kept, *rest = ctx.saved_tensors
        noise_std = rest.pop(0) if ctx.noise_std is None else ctx.noise_std
        draws, vertices = rest[:k], rest[k:]
        dz = torch.empty_like(g, memory_format=torch.contiguous_format)
        dqs = [torch.empty_like(dz) for _ in range(m)]
        reuse = kept.numel() > 0
        for rows in [slice(None)] if reuse else _chunks(z):
            buf = kept if reuse else _directions(z, vertices, noise_std, draws, rows)[0]
            units = buf[m:] if draws else buf
            gc, dzc = g[rows], dz[rows]
            for j in range(m):
                a = torch.linalg.vecdot(units[j], gc).unsqueeze(-1).mul_(weights[j, rows])
                dq = torch.mul(buf[j], a, out=dqs[j][rows])  # |unit| <= 1: no overflow
                torch.sub(gc, dq, out=dzc) if j == 0 else dzc.sub_(dq)
        return dz, None, None, None, *dqs


def reparam(
    z: torch.Tensor,
    vertices: Sequence[torch.Tensor],
    lam: torch.Tensor | None,
    noise_std: Any,
    noises: Sequence[torch.Tensor | None],
) -> torch.Tensor:
    """:func:`diveq.core._estimators.reparam` on torch rows, through :class:`_Step`."""
    if isinstance(noise_std, torch.Tensor):
        noise_std = noise_std.detach()
    if lam is not None:
        lam = lam.detach()
    return _Step.apply(z, lam, noise_std, list(noises), *vertices)[0]
