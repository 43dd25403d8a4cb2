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
    """
    info = torch.finfo(v.dtype)
    tiny = math.sqrt(info.smallest_normal / info.eps)
    half = math.frexp(info.max)[1] // 2  # ||v|| < 2^half unless the sum of squares overflowed
    up = 2.0 ** (half - 16 - math.floor(math.log2(tiny)))  # tiny rows: below 2^(half-16)
    down = 2.0 ** -(half + 16)  # entries <= max become <= 2^(half-16): D up to 2^32 fits
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    scale = torch.ones_like(n).masked_fill_(n < tiny, up).masked_fill_(n == math.inf, down)
    v.mul_(scale)
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    v.mul_(n.reciprocal().masked_fill_(n == 0, 0.0))
    return n.div_(scale)


class _Step(torch.autograd.Function):
    """``z + sum_j w_j ||q_j - z|| sg(unit(q_j - z + s xi_j))`` (see the module docstring)."""

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
        noisy = bool(draws)
        # rows j < m hold d_j, then e^_j; rows m + j hold e_j, then u_j (noisy only)
        buf = torch.empty((2 * m if noisy else m, *z.shape), dtype=z.dtype, device=z.device)
        for j, q in enumerate(vertices):
            torch.sub(q, z, out=buf[j])
        if noisy:
            for j, xi in enumerate(draws):
                if isinstance(noise_std, torch.Tensor):
                    torch.addcmul(buf[j], xi, noise_std, out=buf[m + j])
                else:
                    torch.add(buf[j], xi, alpha=noise_std, out=buf[m + j])
        lengths = _unit_rows(buf.view(-1, z.shape[-1])).view(buf.shape[0], -1, 1)[:m]
        # w_j per vertex: the weight of g . unit(e_j) in the backward
        weights = torch.ones_like(lengths) if lam is None else torch.stack((1.0 - lam, lam))
        units = buf[m:] if noisy else buf
        values = torch.addcmul(z, units[0], weights[0] * lengths[0])
        for j in range(1, m):
            values.addcmul_(units[j], weights[j] * lengths[j])
        # torch.func wants the tensors saved for the backward returned as outputs
        return values, buf, weights

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _, buf, weights = output
        ctx.mark_non_differentiable(buf, weights)
        ctx.set_materialize_grads(False)  # no zero-filled (2m, N, D) gradient for the buffer
        ctx.save_for_backward(buf, weights)
        ctx.m = len(inputs) - 4
        ctx.noisy = buf.shape[0] > ctx.m

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        buf, weights = ctx.saved_tensors
        m: int = ctx.m
        if g is None:  # the values were not used
            return (None,) * (4 + m)
        units = buf[m:] if ctx.noisy else buf
        dqs = []
        dz = g
        for j in range(m):
            a = torch.linalg.vecdot(units[j], g).unsqueeze(-1).mul_(weights[j])  # |unit| <= 1
            dq = buf[j] * a
            dqs.append(dq)
            dz = torch.sub(g, dq) if j == 0 else dz.sub_(dq)
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
