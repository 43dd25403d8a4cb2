"""The state of a reference layer and its update after one train-mode call.

The state is always stacked: a one-codebook layer keeps ``M = 1`` codebook of width
``D' = D``. The update runs, in this order: the call counter, the usage counters, the SF
warm-up collection, then either the SF warm-up init or a dead-code replacement.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from diveq import _checks
from diveq._layer_spec import LayerSpec
from diveq.reference import _validate as v
from diveq.reference._replacement import replace_dead_codes
from diveq.reference._usage import update_usage
from diveq.reference._warmup import warmup_codebook

__all__ = [
    "LayerState",
    "advance",
    "check_state",
    "collects",
    "initial_state",
    "initialises",
    "replaces",
]


class LayerState(NamedTuple):
    """The state of a reference layer (a new one after every train-mode call).

    Attributes
    ----------
    codebooks : ndarray of float64, shape (M, K, D')
        The codebooks, stacked (``M = 1`` and ``D' = D`` for one-codebook layers).
    calls : int
        Train-mode calls so far.
    hits : ndarray of int64, shape (M, K)
        Valid rows assigned to each code since the last counter reset.
    calls_used : ndarray of int64, shape (M, K)
        Train-mode calls, since the last reset, in which each code was assigned at least once.
    warmup_rows : ndarray of float64, shape (R, M, D')
        The valid rows (per codebook: the latent, its block, or its residual-stage input) kept
        so far for the SF warm-up init, in call order; ``R = 0`` outside the collection calls.
    """

    codebooks: Any
    calls: int
    hits: Any
    calls_used: Any
    warmup_rows: Any


def _stacked(spec: LayerSpec) -> tuple[int, int, int]:
    return spec.num_codebooks, spec.num_codes, spec.width


def _zero_counters(spec: LayerSpec) -> tuple[v.I64, v.I64]:
    m, k, _ = _stacked(spec)
    return np.zeros((m, k), dtype=np.int64), np.zeros((m, k), dtype=np.int64)


def initial_state(spec: LayerSpec, codebook: Any, rng: Any) -> LayerState:
    """A fresh state: the given codebook (or one drawn ``U(low, high)``), zero counters."""
    m, k, w = _stacked(spec)
    if codebook is not None:
        arr = np.asarray(codebook)
        _checks.check_draw("codebook", arr, spec.book_shape)
        books = v.finite("codebook", arr).reshape(m, k, w).copy()
    elif rng is not None:
        low, high = spec.init_bounds
        books = np.random.default_rng(rng).uniform(low, high, size=(m, k, w))
    else:
        raise ValueError(
            f"init needs a `codebook` of shape {spec.book_shape} or an `rng` to draw one from"
        )
    hits, used = _zero_counters(spec)
    return LayerState(books, 0, hits, used, np.zeros((0, m, w)))


def check_state(spec: LayerSpec, state: Any) -> None:
    """Raise unless ``state`` is a :class:`LayerState` whose arrays fit the layer."""
    if not isinstance(state, LayerState):
        raise TypeError(f"`state` must be a LayerState; got {type(state).__name__}")
    m, k, w = _stacked(spec)
    want = {
        "codebooks": (m, k, w),
        "hits": (m, k),
        "calls_used": (m, k),
        "warmup_rows": (np.shape(state.warmup_rows)[:1] or (0,)) + (m, w),
    }
    for name, shape in want.items():
        got = np.shape(getattr(state, name))
        if got != shape:
            raise ValueError(f"`state.{name}` must have shape {shape}; got shape {got}")
    if isinstance(state.calls, bool) or not isinstance(state.calls, (int, np.integer)):
        raise TypeError(f"`state.calls` must be an int; got {state.calls!r}")
    if state.calls < 0:
        raise ValueError(f"`state.calls` must be >= 0; got {state.calls}")


def collects(spec: LayerSpec, c: int) -> bool:
    """Whether call ``c`` keeps its rows: ``skip_iters - avg_iters <= c < skip_iters``."""
    return spec.warmup and spec.skip_iters - spec.avg_iters <= c < spec.skip_iters


def initialises(spec: LayerSpec, c: int) -> bool:
    """Whether train-mode call ``c`` runs the SF warm-up init: ``c == skip_iters - 1``."""
    return spec.warmup and c == spec.skip_iters - 1


def replaces(spec: LayerSpec, c: int) -> bool:
    """Whether train-mode call ``c`` ends a replacement window (and is not the warm-up init).

    ``c % replacement_iters == 0``; space-filling layers only during the warm-up.
    """
    if not spec.replaces or spec.replacement_iters is None or initialises(spec, c):
        return False
    in_window = c % spec.replacement_iters == 0
    return in_window and (not spec.space_filling or c < spec.skip_iters)


def _latents(spec: LayerSpec, books: v.F64, x: v.F64, idx: v.I64) -> v.F64:
    """Per-codebook latents of the valid rows, ``(n, M, D')``: the rows, their blocks, or the
    residual-stage inputs ``x_0 = x``, ``x_{m+1} = x_m - C_m[k_m]``."""
    m_books, _, w = books.shape
    if spec.layout != "residual":
        return x.reshape(x.shape[0], m_books, w)
    stages = np.zeros((x.shape[0], m_books, w))
    for m in range(m_books):
        stages[:, m] = x
        x = x - books[m][idx[:, m]]
    return stages


def advance(
    spec: LayerSpec, state: LayerState, x: v.F64, idx: v.I64, draws: dict[str, v.F64]
) -> LayerState:
    """The state after train-mode call ``c = state.calls + 1``.

    ``x`` ``(n, D)`` and ``idx`` ``(n, M)`` are the call's valid rows and their indices (``-1``
    where the call did not quantise); ``draws`` holds ``donors`` ``(M, K)`` and
    ``perturbation`` ``(M, K, D')`` when :func:`replaces` is true.
    """
    m_books, k, w = _stacked(spec)
    c = state.calls + 1
    books = state.codebooks.copy()
    hits, used = state.hits.copy(), state.calls_used.copy()
    for m in range(m_books):
        hits[m], used[m] = update_usage(hits[m], used[m], idx[:, m], k)
    rows = state.warmup_rows
    if collects(spec, c):
        rows = np.concatenate([rows, _latents(spec, state.codebooks, x, idx)])
    if initialises(spec, c):
        books = np.stack([warmup_codebook(rows[:, m], k) for m in range(m_books)])
        rows = np.zeros((0, m_books, w))
        hits, used = _zero_counters(spec)
    elif replaces(spec, c):
        for m in range(m_books):
            books[m], _ = replace_dead_codes(
                books[m],
                hits[m],
                used[m],
                replacement_iters=spec.replacement_iters,  # type: ignore[arg-type]
                discard_threshold=spec.discard_threshold,
                perturb_eps=spec.perturb_eps,
                uniform=draws["donors"][m],
                noise=draws["perturbation"][m],
            )
        hits, used = _zero_counters(spec)
    return LayerState(books, c, hits, used, rows.copy())
