"""The methods every reference layer shares: ``init``, ``apply``, ``vjp``, ``encode``, ``decode``.

A layer holds only its options (:class:`diveq._layer_spec.LayerSpec`); the codebooks and
counters live in a :class:`LayerState` that every train-mode call replaces by a new one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diveq import _checks
from diveq._layer_spec import LayerSpec
from diveq._types import LayerDraws, LayerOutput, Quantized, SFLayerOutput, SFQuantized
from diveq.reference import _layer_step as step
from diveq.reference._layer_state import (
    LayerState,
    advance,
    check_state,
    initial_state,
    replaces,
)

__all__ = ["Layer"]


class Layer:
    """What the four layers share: ``init``, ``apply``, ``vjp``, ``encode`` and ``decode``."""

    spec: LayerSpec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec})"

    def init(self, codebook: Any = None, *, rng: Any = None) -> LayerState:
        """A fresh state: zero counters, no calls, no warm-up rows.

        Parameters
        ----------
        codebook : array_like, optional
            The initial codebook, ``(K, D)`` for one-codebook layers or ``(M, K, D')`` for
            composites (real floating, finite; copied).
        rng : numpy.random.Generator, optional
            Draws the codebook elementwise uniform in ``[low, high)`` of ``spec.init_bounds``
            (``(-1/K, 1/K)`` for ``codebook_init="symmetric"``, ``[0, 1/K)`` for
            ``"positive"``) when
            ``codebook`` is not given.

        Returns
        -------
        LayerState
            The codebooks stacked as ``(M, K, D')``.

        Raises
        ------
        ValueError
            If neither ``codebook`` nor ``rng`` is given, or the codebook has the wrong shape
            or non-finite values.
        TypeError
            If the codebook is not real floating.
        """
        return initial_state(self.spec, codebook, rng)

    def apply(
        self,
        state: LayerState,
        z: Any,
        *,
        mask: Any = None,
        draws: LayerDraws | None = None,
        train: bool = True,
        rng: Any = None,
    ) -> tuple[LayerOutput | SFLayerOutput, LayerState]:
        """One call of the layer: quantise ``z`` and (in train mode) advance the state.

        Parameters
        ----------
        state : LayerState
            The state before the call (never modified).
        z : array_like
            Latents, real floating, with ``dim`` features on ``feature_axis``.
        mask : array_like of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows are left out.
        draws : LayerDraws, optional
            Explicit random draws; see Notes for the shapes.
        train : bool, default True
            Train mode (estimator, state update) or eval mode (hard inference, no update).
        rng : numpy.random.Generator, optional
            Samples the needed draws that ``draws`` does not give, in the order dither, noise,
            donors, perturbation.

        Returns
        -------
        output : LayerOutput or SFLayerOutput
            ``values`` (float64, shape of ``z``), ``indices`` (int64, shape of ``z`` without
            the feature axis, plus a trailing axis ``M`` for composites), ``perplexity``
            (0-d float64) and, for space-filling layers, ``weights`` (like ``indices``).
        state : LayerState
            The new state; in eval mode the same ``state`` object.

        Raises
        ------
        ValueError
            On a bad input or mask shape, a draw of the wrong shape, a needed draw missing
            without ``rng``, or an SF warm-up init with fewer than ``K`` collected rows.
        TypeError
            If ``z`` is not real floating or ``mask`` not boolean.

        Notes
        -----
        **Rows.** ``x = moveaxis(z, feature_axis, -1).reshape(N, D)`` (C order). A row is
        valid if it is finite and ``mask`` is true. Per-row draws are indexed by all ``N``
        rows. Valid rows get the estimator's results; invalid rows keep ``values = x`` (even
        NaN), index ``-1`` and weight ``0``, are not counted and send no gradient to the
        codebook. ``perplexity`` is the mean over the codebooks of :func:`perplexity` of the
        valid rows' indices (1 without valid rows).

        **Estimator.** Eval mode: the hard inference (``quantize``, ``sf_quantize``, or their
        product / residual forms). Train-mode call ``c = state.calls + 1``: DiVeQ layers run
        ``diveq`` / ``product_diveq`` / ``residual_diveq``. Space-filling layers run
        ``sf_diveq`` / ``product_sf_diveq`` / ``residual_sf_diveq`` once ``skip_iters <= 1`` or
        ``c >= skip_iters``; before that (the warm-up) a one-codebook layer passes the rows
        through (``values = x``, index ``-1``, identity gradient) and a composite runs product
        / residual DiVeQ (weights ``0``).

        **Draws.** ``noise`` standard normal, ``(N, D)``, or ``(2, N, D)`` for a quantising
        one-codebook space-filling call; not needed when ``noise_std == 0``. ``dither`` in
        ``[0, 1)``: ``(K - 1,)``, composites ``(M, K - 1)``, for space-filling calls.
        ``donors`` uniform in ``[0, 1)``: ``(K,)`` / ``(M, K)``, and ``perturbation`` standard
        normal: ``(K, D)`` / ``(M, K, D')``, only on a call that runs a replacement. Draws the
        call does not need are ignored.

        **State update** (train mode), in this order: (a) ``calls = c``; per codebook ``m``,
        ``hits[m] += code_usage(indices[:, m])`` and ``calls_used[m] += (counts > 0)``. (b) If
        the layer has a warm-up (space-filling, ``skip_iters >= 2``) and
        ``skip_iters - avg_iters <= c < skip_iters``, the valid rows' latents are appended to
        ``warmup_rows``: the rows; for product layers their blocks; for residual layers the
        stage inputs ``x_0 = x``, ``x_{m+1} = x_m - C_m[k_m]`` (this call's codebooks and
        indices). (c) At ``c == skip_iters - 1``: codebook ``m`` becomes
        ``warmup_codebook(warmup_rows[:, m], K)`` (codeword ``j`` the mean of kept rows
        ``[j h, (j + 1) h)``, ``h = R // K``), the rows are dropped and the counters zeroed.
        (d) Otherwise, if ``replacement_iters`` is set, ``c % replacement_iters == 0`` and
        (for space-filling composites) ``c < skip_iters``: per codebook
        ``replace_dead_codes(C_m, hits[m], calls_used[m], ..., uniform=donors[m],
        noise=perturbation[m])``, then the counters are zeroed, dead codes or not.
        """
        check_state(self.spec, state)
        r = step.rows(self.spec, z, mask)
        c = state.calls + 1
        kind = step.phase(self.spec, c, train)
        replacing = train and replaces(self.spec, c)
        shapes = step.draw_shapes(self.spec, kind, r.x.shape[0], replacing=replacing)
        d = step.resolve_draws(shapes, draws, rng, "pass it in `draws` or give `rng`")
        est = step.estimate(self.spec, kind, state.codebooks, r, d)
        values, indices, weights, perp = step.assemble(self.spec, r, est)
        out: LayerOutput | SFLayerOutput = (
            SFLayerOutput(values, indices, perp, weights)
            if self.spec.space_filling
            else LayerOutput(values, indices, perp)
        )
        if not train:
            return out, state
        book = state.codebooks.shape
        if "donors" in d:
            d["donors"] = d["donors"].reshape(book[:2])
            d["perturbation"] = d["perturbation"].reshape(book)
        xv, iv = r.x[r.valid], est[1]
        return out, advance(self.spec, state, xv, iv, d)

    def vjp(
        self,
        state: LayerState,
        z: Any,
        cotangent: Any,
        *,
        mask: Any = None,
        draws: LayerDraws | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient of ``sum(values * cotangent)`` of the train-mode call ``apply(state, z)``.

        Parameters
        ----------
        state : LayerState
            The state before the call.
        z : array_like
            Latents, as in :meth:`apply`.
        cotangent : array_like
            Upstream gradient ``g`` of ``values``, shape of ``z``.
        mask : array_like of bool, optional
            As in :meth:`apply`.
        draws : LayerDraws, optional
            The ``noise`` and ``dither`` of the call (required when it needs them).

        Returns
        -------
        dz : ndarray of float64
            Shape of ``z``. The estimator's VJP on the valid rows; ``g`` itself on invalid
            rows and during a one-codebook warm-up.
        dcodebook : ndarray of float64
            ``(K, D)`` for one-codebook layers, ``(M, K, D')`` for composites: the
            estimator's codebook VJP (zero during a one-codebook warm-up).

        Raises
        ------
        ValueError
            On a bad input, cotangent or draw shape, or a needed draw missing.
        TypeError
            If ``z`` or ``cotangent`` is not real floating.
        """
        check_state(self.spec, state)
        r = step.rows(self.spec, z, mask)
        g = np.asarray(cotangent)
        _checks.check_draw("cotangent", g, np.shape(z))
        g_rows = np.moveaxis(g, self.spec.feature_axis, -1).reshape(r.x.shape).astype(np.float64)
        kind = step.phase(self.spec, state.calls + 1, True)
        shapes = step.draw_shapes(self.spec, kind, r.x.shape[0], replacing=False)
        d = step.resolve_draws(shapes, draws, None, "the vjp takes its draws explicitly")
        dz, dbooks = step.vjp_rows(self.spec, state.codebooks, kind, r, g_rows, d)
        dz = np.moveaxis(dz.reshape(r.moved), -1, self.spec.feature_axis)
        return dz, dbooks.reshape(self.spec.book_shape)

    def encode(self, state: LayerState, z: Any, *, mask: Any = None) -> Quantized | SFQuantized:
        """Hard inference (the eval-mode call without perplexity); changes nothing.

        Parameters
        ----------
        state : LayerState
            The layer's state.
        z : array_like
            Latents, as in :meth:`apply`.
        mask : array_like of bool, optional
            As in :meth:`apply`.

        Returns
        -------
        Quantized or SFQuantized
            ``values`` (shape of ``z``) and ``indices``; space-filling layers add ``weights``,
            the projection parameters ``t``. Invalid rows: ``z``, ``-1`` and ``0``.
        """
        check_state(self.spec, state)
        r = step.rows(self.spec, z, mask)
        est = step.estimate(self.spec, "eval", state.codebooks, r, {})
        values, indices, weights, _ = step.assemble(self.spec, r, est)
        if self.spec.space_filling:
            return SFQuantized(values, indices, weights)
        return Quantized(values, indices)

    def decode(self, state: LayerState, indices: Any, weights: Any = None) -> np.ndarray:
        """The points that ``indices`` (and ``weights``) name, features on ``feature_axis``.

        Parameters
        ----------
        state : LayerState
            The layer's state.
        indices : array_like of int
            As returned by :meth:`encode` or :meth:`apply`; composites with a trailing axis
            ``M``. ``-1`` entries decode to zeros.
        weights : array_like, optional
            Required by space-filling layers (their positions on the segments), refused by
            DiVeQ layers. Index ``K - 1`` (a codeword index, which only a composite warm-up
            call returns, with weight ``0``) decodes to ``c_{K-1}``.

        Returns
        -------
        ndarray of float64
            DiVeQ: ``c_k``; space-filling: ``c_i + t (c_{i+1} - c_i)`` (``c_{i+1}`` at
            ``t = 1``), the point formula of ``sf_quantize``. Product layers concatenate the
            blocks, residual layers sum the stages in order.

        Raises
        ------
        ValueError
            On missing or unexpected ``weights``, a shape mismatch, or an index out of range.
        TypeError
            If ``indices`` is not integer or ``weights`` not real floating.
        """
        check_state(self.spec, state)
        return step.decode(self.spec, state.codebooks, indices, weights)
