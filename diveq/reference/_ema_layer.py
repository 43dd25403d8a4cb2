"""The reference EMA-codebook layer: straight-through values, a commitment loss, and the codebook
trained by exponential moving averages instead of gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from diveq import _checks
from diveq._ema_spec import EMASpec
from diveq._types import EMALayerOutput, EMAState
from diveq.reference import _validate as v
from diveq.reference._ema import ema_init, ema_statistics, ema_update
from diveq.reference._layer_step import Rows, rows
from diveq.reference._search import nearest
from diveq.reference._usage import perplexity

__all__ = ["EMAVQ"]


class EMAVQ:
    """Vector quantisation with an EMA codebook (VQ-VAE appendix; Razavi et al. 2019).

    Parameters
    ----------
    num_codes : int
        ``K >= 1``.
    dim : int
        ``D``, the feature size.
    decay : float, default 0.99
        EMA decay in ``[0, 1]``.
    eps : float, default 1e-5
        Laplace smoothing of the cluster sizes, ``>= 0``.
    beta : float, default 0.25
        Weight of the commitment term in ``output.loss``.
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook drawn by :meth:`init`: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.

    Notes
    -----
    A call flattens ``z`` to rows ``x`` (features last, C order); a row is valid if finite and
    not masked out. Valid rows: ``k = nearest(x, codebook)``, ``values = x + sg(c_k - x)``
    (straight-through: ``dvalues/dx = I``, no gradient to the codebook). Invalid rows keep
    ``x``, get index ``-1`` and are not counted.

    ``loss = beta * sum_valid ||x - sg(c_k)||^2 / (n_valid D)`` (``0`` without valid rows) is
    the commitment term, the only loss the layer adds: the codebook is trained by the EMA
    update, not by gradients, so the VQ-VAE codebook term is left out.

    A train-mode call then runs ``ema_update(state, *ema_statistics(x, k, K), decay, eps)``
    on the valid rows; in data-parallel training the statistics are summed over the workers
    first. Eval mode changes nothing. ``perplexity`` is that of the call's valid indices.

    Examples
    --------
    >>> import numpy as np
    >>> from diveq.reference import EMAVQ
    >>> layer = EMAVQ(2, 1, decay=0.5, eps=0.0)
    >>> state = layer.init([[0.0], [1.0]])
    >>> out, state = layer.apply(state, np.array([[0.75], [1.25], [0.25]]))
    >>> out.indices, out.loss, state.codebook
    (array([1, 1, 0]), array(0.015625), array([[0.125], [1.   ]]))
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        decay: float = 0.99,
        eps: float = 1e-5,
        beta: float = 0.25,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
    ) -> None:
        self.spec = EMASpec(num_codes, dim, decay, eps, beta, feature_axis, codebook_init)

    def __repr__(self) -> str:
        return f"EMAVQ({self.spec})"

    def init(self, codebook: Any = None, *, rng: Any = None) -> EMAState:
        """A fresh state: ``ema_init`` of ``codebook``, or of one drawn with ``rng``.

        Parameters
        ----------
        codebook : array_like, shape (K, D), optional
            The initial codewords (copied).
        rng : numpy.random.Generator, optional
            Draws the codebook uniform in ``spec.init_bounds`` when ``codebook`` is not given.

        Returns
        -------
        EMAState
            ``codebook``, ``cluster_size = 1``, ``embed_sum = codebook`` (float64).

        Raises
        ------
        ValueError
            If neither is given, or the codebook has the wrong shape or non-finite values.
        """
        k, d = self.spec.num_codes, self.spec.dim
        if codebook is None:
            if rng is None:
                raise ValueError(
                    f"init needs a `codebook` of shape {(k, d)} or an `rng` to draw one from"
                )
            low, high = self.spec.init_bounds
            codebook = np.random.default_rng(rng).uniform(low, high, size=(k, d))
        _checks.check_draw("codebook", np.asarray(codebook), (k, d))
        return ema_init(codebook)

    def _rows(self, state: EMAState, z: Any, mask: Any) -> tuple[Rows, v.I64, v.F64]:
        """The call's rows, their indices (``-1`` where invalid) and codewords (0 there)."""
        book = np.asarray(state.codebook, dtype=np.float64)
        _checks.check_draw("state.codebook", book, (self.spec.num_codes, self.spec.dim))
        r = rows(self.spec.rows, z, mask)
        idx = np.full(r.x.shape[0], -1, dtype=np.int64)
        if np.any(r.valid):
            idx[r.valid] = nearest(r.x[r.valid], book)
        picked = np.where(r.valid[:, None], book[np.maximum(idx, 0)], 0.0)
        return r, idx, picked

    def apply(
        self, state: EMAState, z: Any, *, mask: Any = None, train: bool = True
    ) -> tuple[EMALayerOutput, EMAState]:
        """One call: quantise ``z``; in train mode also the EMA step of the codebook.

        Parameters
        ----------
        state : EMAState
            The state before the call (never modified).
        z : array_like
            Latents, real floating, with ``dim`` features on ``feature_axis``.
        mask : array_like of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows are left out.
        train : bool, default True
            Train mode (EMA step) or eval mode (no state change).

        Returns
        -------
        output : EMALayerOutput
            ``values`` (float64, shape of ``z``), ``indices`` (shape of ``z`` without the
            feature axis), ``perplexity`` and ``loss`` (0-d float64).
        state : EMAState
            The new state; in eval mode the same ``state`` object.

        Raises
        ------
        ValueError
            On a bad input, mask or state shape.
        TypeError
            If ``z`` is not real floating or ``mask`` not boolean.
        """
        r, idx, picked = self._rows(state, z, mask)
        values = np.where(r.valid[:, None], picked, r.x)
        diff = np.where(r.valid[:, None], r.x - picked, 0.0)
        entries = int(np.sum(r.valid)) * self.spec.dim
        loss = self.spec.beta * float(np.sum(diff * diff)) / max(entries, 1)
        out = EMALayerOutput(
            np.moveaxis(values.reshape(r.moved), -1, self.spec.feature_axis),
            idx.reshape(r.lead),
            perplexity(idx, self.spec.num_codes),
            np.asarray(loss),
        )
        if not train:
            return out, state
        x = np.where(r.valid[:, None], r.x, 0.0)  # invalid rows (maybe NaN) carry index -1
        counts, sums = ema_statistics(x, idx, self.spec.num_codes)
        return out, ema_update(state, counts, sums, decay=self.spec.decay, eps=self.spec.eps)

    def vjp(
        self,
        state: EMAState,
        z: Any,
        cotangent: Any,
        *,
        loss_cotangent: float = 1.0,
        mask: Any = None,
    ) -> np.ndarray:
        """Gradient w.r.t. ``z`` of ``sum(values * cotangent) + loss_cotangent * loss``.

        Parameters
        ----------
        state : EMAState
            The state of the call.
        z : array_like
            Latents, as in :meth:`apply`.
        cotangent : array_like
            Upstream gradient ``g`` of ``values``, shape of ``z``.
        loss_cotangent : float, default 1.0
            Upstream gradient ``h`` of ``loss``.
        mask : array_like of bool, optional
            As in :meth:`apply`.

        Returns
        -------
        ndarray of float64
            Shape of ``z``: ``g + h beta 2 (x - c_k) / (n_valid D)`` on valid rows, ``g`` on
            the others. The codebook gets no gradient.
        """
        r, _, picked = self._rows(state, z, mask)
        g = np.asarray(cotangent)
        _checks.check_draw("cotangent", g, np.shape(z))
        g_rows = np.moveaxis(g, self.spec.feature_axis, -1).reshape(r.x.shape).astype(np.float64)
        entries = max(int(np.sum(r.valid)) * self.spec.dim, 1)
        h = v.real_number("loss_cotangent", loss_cotangent)
        diff = np.where(r.valid[:, None], r.x - picked, 0.0)
        dz = g_rows + h * self.spec.beta * 2.0 * diff / entries
        return np.moveaxis(dz.reshape(r.moved), -1, self.spec.feature_axis)
