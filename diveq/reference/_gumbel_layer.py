"""The reference Gumbel-softmax layer: :func:`gumbel_softmax` on the valid rows of a call."""

from __future__ import annotations

from typing import Any

import numpy as np

from diveq._checks import check_hard
from diveq._layer_spec import LayerSpec
from diveq._types import GumbelState, LayerDraws, LayerOutput
from diveq.reference import _validate as v
from diveq.reference._gumbel import gumbel_softmax, gumbel_softmax_vjp
from diveq.reference._layer_step import Rows, rows
from diveq.reference._search import quantize
from diveq.reference._usage import perplexity

__all__ = ["GumbelState", "GumbelVQ"]


class GumbelVQ:
    """Gumbel-softmax quantiser layer (reference): a pure function of a :class:`GumbelState`.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    tau : float, default 1.0
        Temperature (overridable per call, e.g. by :func:`diveq.gumbel_temperature`).
    hard : bool, default False
        Straight-through values ``c_k`` (see :func:`gumbel_softmax`).
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init ``U(-1/K, 1/K)`` or ``U[0, 1/K)``.

    Notes
    -----
    A call flattens ``z`` to rows ``x`` ``(N, D)`` (features last, C order); a row is valid if
    finite and not masked. Training: valid rows get :func:`gumbel_softmax` with the rows of
    ``draws.gumbel`` ``(N, K)``; eval: :func:`quantize` (the nearest codeword, the argmax of
    the logits). Invalid rows keep their input, get index ``-1`` and send no gradient to the
    codebook; ``perplexity`` is that of the valid rows. The state never changes.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        tau: float = 1.0,
        hard: bool = False,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
    ) -> None:
        self.spec = LayerSpec(
            "single", 1, num_codes, dim, replacement_iters=None, feature_axis=feature_axis,
            codebook_init=codebook_init,
        )  # fmt: skip
        v.tau_value(tau)
        check_hard(hard)
        self.tau, self.hard = tau, hard

    def init(self, codebook: Any = None, *, rng: Any = None) -> GumbelState:
        """A state holding ``codebook`` (copied), or one drawn from ``rng`` with the init."""
        if codebook is None:
            if rng is None:
                raise ValueError("pass the initial `codebook` or an `rng` to draw it")
            low, high = self.spec.init_bounds
            return GumbelState(np.random.default_rng(rng).uniform(low, high, self.spec.book_shape))
        cb = np.array(codebook)
        if cb.shape != self.spec.book_shape:
            raise ValueError(f"`codebook` must have shape {self.spec.book_shape}; got {cb.shape}")
        return GumbelState(v.finite("codebook", cb))

    def _draws(self, r: Rows, draws: LayerDraws | None, rng: Any) -> np.ndarray:
        shape = (r.x.shape[0], self.spec.num_codes)
        given = None if draws is None else draws.gumbel
        return v.Draws(rng).gumbel(v.optional_draw("gumbel", given, shape), shape)

    def apply(
        self,
        state: GumbelState,
        z: Any,
        *,
        mask: Any = None,
        draws: LayerDraws | None = None,
        train: bool = True,
        rng: Any = None,
        tau: float | None = None,
    ) -> tuple[LayerOutput, GumbelState]:
        """One call: ``(LayerOutput(values, indices, perplexity), state)``; ``tau`` overrides
        the layer's temperature for this call."""
        r = rows(self.spec, z, mask)
        x, ok = r.x, r.valid
        values, idx = x.copy(), np.full(x.shape[0], -1, dtype=np.int64)
        if train:
            g = self._draws(r, draws, rng)
            t = self.tau if tau is None else tau
            out = gumbel_softmax(x[ok], state.codebook, tau=t, hard=self.hard, gumbel=g[ok])
        else:
            out = quantize(x[ok], state.codebook)
        values[ok], idx[ok] = out.values, out.indices
        values = np.moveaxis(values.reshape(r.moved), -1, self.spec.feature_axis)
        return LayerOutput(values, idx.reshape(r.lead), perplexity(idx, self.spec.num_codes)), state

    def vjp(
        self,
        state: GumbelState,
        z: Any,
        cotangent: Any,
        *,
        mask: Any = None,
        draws: LayerDraws | None = None,
        tau: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(dz, dcodebook)`` of a train-mode call for the cotangent of its values (draws
        explicit); invalid rows get ``dz = g`` and give the codebook nothing."""
        r = rows(self.spec, z, mask)
        g_rows = np.moveaxis(np.asarray(cotangent, dtype=np.float64), self.spec.feature_axis, -1)
        g_rows = g_rows.reshape(r.x.shape)
        if draws is None or draws.gumbel is None:
            raise ValueError("`draws.gumbel` is required: the vjp takes its draws explicitly")
        g = self._draws(r, draws, None)
        ok, t = r.valid, self.tau if tau is None else tau
        dz = g_rows.copy()
        dz[ok], dc = gumbel_softmax_vjp(
            r.x[ok], state.codebook, g_rows[ok], tau=t, hard=self.hard, gumbel=g[ok]
        )
        return np.moveaxis(dz.reshape(r.moved), -1, self.spec.feature_axis), dc
