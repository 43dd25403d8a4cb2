"""One layer call, written once: the estimator a phase uses, the usage counts, and the training
state's step (warm-up collection and init, dead-code replacement).

A backend keeps only what is its own and hands it in as :class:`LayerOps`: where the warm-up
rows live, how a data-dependent branch runs (a Python ``if`` on a host counter, or
``jax.lax.cond`` on a traced one), the collectives of data-parallel training, and how missing
draws are sampled. The semantics are those of the reference layers (:mod:`diveq.reference`),
against which the backends are checked with identical draws. Internally codebooks are stacked
``(M, K, D')`` and per-row codes are ``(N, M)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from diveq._checks import check_draw
from diveq._layer_spec import LayerSpec
from diveq._types import LayerDraws
from diveq.core._common import Array, cast, work_dtype
from diveq.core._layer_rows import decode_rows
from diveq.core._schedule import (
    replacement_due,
    warmup_collects,
    warmup_initialises,
    warmup_quantizes,
)
from diveq.core._state import (
    accumulate_usage,
    code_usage,
    perplexity_from_counts,
    replace_dead_codes,
    warmup_codebook,
)

__all__ = [
    "Draws",
    "Events",
    "LayerOps",
    "LayerState",
    "advance",
    "book_counts",
    "estimate",
    "infer",
    "mean_perplexity",
    "too_few_rows",
]

Rows = tuple[Array, Array, Array]  # values (N, D), indices (N, M), weights (N, M)


class LayerState(NamedTuple):
    """The training state in the core's layout; ``warmup`` is the backend's own store."""

    books: Array  # (M, K, D')
    calls: Any  # train-mode calls so far: a host int or a 0-d integer array
    hits: Array  # (M, K)
    calls_used: Array  # (M, K)
    warmup: Any


class Events(NamedTuple):
    """What a train-mode call did to the codebooks (Python bools or 0-d bool arrays)."""

    replaced: Any
    initialised: Any


def python_cond(pred: Any, if_true: Callable[[Any], Any], if_false: Callable[[Any], Any], x: Any):
    """``jax.lax.cond``'s contract for a predicate known on the host."""
    return if_true(x) if pred else if_false(x)


def _keep(x: Any) -> Any:
    return x


@dataclass(frozen=True)
class LayerOps:
    """What a backend supplies to run a layer call.

    Attributes
    ----------
    xp : namespace
        The array namespace.
    function : callable
        ``function(name)`` -> the backend's public function ``name`` (takes explicit draws).
    stop_gradient : callable
        The backend's stop-gradient.
    cond : callable
        ``cond(pred, if_true, if_false, operand)`` for predicates that may be traced.
    branch : callable, optional
        As ``cond``, for the SF warm-up init (a costly branch that runs once, off the gradient
        path): a backend whose ``cond`` evaluates both branches (``where`` masking) runs this one
        lazily; default: ``cond``.
    bincount : callable, optional
        ``bincount(x, length)``: counts of the values ``0 .. length - 1`` in a 1-d integer
        array (one pass); default: the core's comparison count.
    reduce_counts : callable
        Sums a call's per-code counts over data-parallel workers (identity in one process).
    broadcast_books : callable
        Makes every worker write the same replaced codebooks (identity in one process).
    collect, warmup_rows, clear_warmup : callable
        The warm-up store: ``collect(store, call, latents (N, M, D'), valid) -> store``,
        ``warmup_rows(store) -> (rows (R, M, D'), valid (R,))`` (every worker's rows, in call
        order), ``clear_warmup(store) -> store``.
    require_rows : callable
        ``require_rows(count, message)`` raises ``ValueError(message(count))`` when it can tell that
        ``count < K`` (eagerly); a traced call keeps the codebooks instead.
    all_true : callable
        ``all_true(mask) -> bool``: True only when it can tell, without tracing or a device
        sync, that every entry of ``mask`` is True (an eager CPU array); the layer then skips
        its masking ``where`` passes over ``N x D``. Default: never.
    """

    xp: Any
    function: Callable[[str], Callable[..., Any]]
    stop_gradient: Callable[[Array], Array]
    cond: Callable[..., Any] = python_cond
    branch: Callable[..., Any] | None = None
    bincount: Callable[[Array, int], Array] | None = None
    reduce_counts: Callable[[Array], Array] = _keep
    broadcast_books: Callable[[Array], Array] = _keep
    collect: Callable[..., Any] = _keep
    warmup_rows: Callable[[Any], tuple[Array, Array]] = _keep
    clear_warmup: Callable[[Any], Any] = _keep
    require_rows: Callable[[Any, Callable[[int], str]], None] = lambda count, message: None
    all_true: Callable[[Array], bool] = lambda mask: False


class Draws:
    """A call's draws: the explicit ones (checked and reshaped), the rest sampled on demand.

    ``sample(name, shape)`` draws ``name`` (``"noise"``, ``"dither"``, ``"donors"``,
    ``"perturbation"``) in the core's shape; explicit ``donors`` / ``perturbation`` of a
    one-codebook layer have the user's shapes ``(K,)`` / ``(K, D)``.
    """

    def __init__(
        self, spec: LayerSpec, given: LayerDraws | None, sample: Callable[[str, tuple], Array]
    ):
        self.spec, self.given, self.sample = spec, given or LayerDraws(), sample

    def get(self, name: str, shape: tuple[int, ...]) -> Array:
        x = getattr(self.given, name)
        if x is None:
            return self.sample(name, shape)
        user = shape if self.spec.composite or name in ("noise", "dither") else shape[1:]
        check_draw(name, x, user)
        return x if user == shape else x[None, ...]


def _op_names(spec: LayerSpec) -> tuple[str, str, str]:
    """(training estimator, composite warm-up estimator, inference) function names."""
    prefix = "" if spec.layout == "single" else spec.layout + "_"
    sf = "sf_" if spec.space_filling else ""
    return f"{prefix}{sf}diveq", f"{prefix}diveq", f"{prefix}{sf}quantize"


def _books_arg(spec: LayerSpec, books: Array) -> Array:
    return books if spec.composite else books[0, ...]


def _codes(spec: LayerSpec, xp: Any, x: Array) -> Array:
    return xp.reshape(x, (x.shape[0], spec.num_codebooks))


def _safe(ops: LayerOps, rows: Array, valid: Array) -> Array:
    """The rows with the invalid ones zeroed (unchanged when ``ops`` knows all are valid)."""
    if ops.all_true(valid):
        return rows
    return ops.xp.where(valid[:, None], rows, 0.0)  # a scalar: no N x D zero array


def infer(spec: LayerSpec, ops: LayerOps, books: Array, rows: Array, valid: Array) -> Rows:
    """Hard inference of the valid rows (invalid rows: zeros in, anything out).

    The values are decoded from the codes by :func:`decode_rows`, so that a layer's ``decode``
    reproduces them bitwise (a compiled inference may round its fused arithmetic differently).
    """
    xp = ops.xp
    out = ops.function(_op_names(spec)[2])(_safe(ops, rows, valid), _books_arg(spec, books))
    idx = _codes(spec, xp, out.indices)
    weights = _codes(spec, xp, out.weights) if spec.space_filling else None
    # every code is >= 0 here (invalid rows were searched as zeros)
    values = cast(xp, decode_rows(spec, xp, books, idx, weights, rows, checked=True), rows.dtype)
    if weights is None:
        weights = xp.zeros(idx.shape, dtype=rows.dtype)
    return values, idx, weights


def estimate(
    spec: LayerSpec,
    ops: LayerOps,
    books: Array,
    rows: Array,
    valid: Array,
    draws: Draws,
    quantizing: Any = True,
) -> Rows:
    """The estimator of a train-mode call on the valid rows.

    ``quantizing`` (only read by layers with an SF warm-up) is False during the warm-up: a
    one-codebook layer then passes the rows through (indices ``-1``), a composite runs
    composite DiVeQ. Draws are requested inside the branch that runs.
    """
    xp = ops.xp
    safe = _safe(ops, rows, valid)
    n, (train_name, warm_name, _) = rows.shape[0], _op_names(spec)
    noisy = spec.noise_std > 0

    def run(name: str, space_filling: bool) -> Rows:
        kw: dict[str, Any] = {"noise_std": spec.noise_std}
        if noisy:
            two = space_filling and not spec.composite
            kw["noise"] = draws.get("noise", (2, *rows.shape) if two else tuple(rows.shape))
        if space_filling:
            k = spec.num_codes - 1
            kw["dither"] = draws.get("dither", (spec.num_codebooks, k) if spec.composite else (k,))
        out = ops.function(name)(safe, _books_arg(spec, books), **kw)
        idx = _codes(spec, xp, out.indices)
        if space_filling:
            return out.values, idx, _codes(spec, xp, out.weights)
        return out.values, idx, xp.zeros(idx.shape, dtype=out.values.dtype)

    def train(_: Any) -> Rows:
        return run(train_name, spec.space_filling)

    if not spec.warmup:
        return train(None)

    def warm(_: Any) -> Rows:
        if spec.composite:
            return run(warm_name, False)
        none = xp.full((n, 1), -1, dtype=xp.asarray(0).dtype)
        return safe, none, xp.zeros((n, 1), dtype=rows.dtype)

    return _cond(ops, quantizing, train, warm, None)


def book_counts(spec: LayerSpec, ops: LayerOps, idx: Array) -> Array:
    """Rows per code ``(M, K)`` of per-row codes ``(N, M)``, ``-1`` not counted: one pass over
    ``M K`` bins (code ``k`` of book ``m`` is bin ``m K + k``)."""
    xp = ops.xp
    m, k = spec.num_codebooks, spec.num_codes
    offsets = xp.reshape(xp.arange(m, dtype=idx.dtype) * k, (1, m))
    if ops.bincount is None:
        flat = xp.where(idx >= 0, idx + offsets, xp.full_like(idx, -1))
        return xp.reshape(code_usage(xp.reshape(flat, (-1,)), m * k), (m, k))
    flat = xp.where(idx >= 0, idx + offsets, xp.full_like(idx, m * k))
    return xp.reshape(ops.bincount(xp.reshape(flat, (-1,)), m * k + 1)[: m * k], (m, k))


def mean_perplexity(xp: Any, counts: Array) -> Array:
    """Perplexity of counts ``(M, K)`` per codebook, averaged over the codebooks (0-d)."""
    return xp.mean(perplexity_from_counts(counts))


def warmup_latents(spec: LayerSpec, xp: Any, books: Array, safe: Array, idx: Array) -> Array:
    """What each codebook quantised in this call, ``(N, M, D')``: the rows (one codebook), their
    blocks (product) or the stage inputs ``x_0 = z``, ``x_{m+1} = x_m - C_m[k_m]`` (residual)."""
    n, m = safe.shape[0], spec.num_codebooks
    if spec.layout != "residual":
        return xp.reshape(safe, (n, m, spec.width))
    stages, rest = [], safe
    for j in range(m):
        stages.append(rest)
        picked = xp.take(books[j, ...], xp.clip(idx[:, j], 0, None), axis=0)
        rest = rest - cast(xp, picked, safe.dtype)
    return xp.stack(stages, axis=1)


def too_few_rows(spec: LayerSpec, count: Any) -> str:
    """The error message of an SF warm-up init with fewer than ``K`` valid rows."""
    return (
        f"SF warm-up needs at least K = {spec.num_codes} valid rows to initialise the "
        f"codebook; the last {spec.warmup_slots} warm-up calls kept {count}: raise avg_iters "
        "or the batch size, or mask out fewer rows"
    )


def advance(
    spec: LayerSpec,
    ops: LayerOps,
    state: LayerState,
    rows: Array,
    valid: Array,
    idx: Array,
    counts: Array,
    draws: Draws,
    *,
    warming: bool | None = None,
) -> tuple[LayerState, Events]:
    """The state after a train-mode call whose codes were ``idx`` and (reduced) ``counts``.

    In order: usage counters; warm-up rows kept (calls ``skip_iters - avg_iters`` to
    ``skip_iters - 1``); at call ``skip_iters - 1`` the warm-up init (and no replacement);
    otherwise, at the end of a replacement window (SF layers: during the warm-up only), dead
    codes replaced. Both events reset the counters. ``warming=False`` says the backend's
    warm-up store is already released.
    """
    xp = ops.xp
    call = state.calls + 1
    hits, used = accumulate_usage(state.hits, state.calls_used, counts)
    books = ops.stop_gradient(state.books)
    store = state.warmup
    live = spec.warmup if warming is None else warming
    init_now: Any = False
    if live:

        def collect(s: Any) -> Any:
            latents = warmup_latents(spec, xp, books, _safe(ops, rows, valid), idx)
            return ops.collect(s, call, latents, valid)

        collects = warmup_collects(call, spec.skip_iters, spec.avg_iters)
        store = _cond(ops, collects, collect, _keep, store)
        init_now = warmup_initialises(call, spec.skip_iters)
    due: Any = False
    if spec.replaces:
        due = replacement_due(call, spec.replacement_iters)
        if spec.space_filling:
            due = _and_not(due, warmup_quantizes(call, spec.skip_iters))
    zero = (xp.zeros_like(hits), xp.zeros_like(used))

    def initialise(s: tuple[Any, ...]) -> tuple[Any, ...]:
        books, _, _, store = s
        found, ok = ops.warmup_rows(store)
        count = xp.sum(cast(xp, ok, hits.dtype))
        ops.require_rows(count, lambda found: too_few_rows(spec, found))
        dt = work_dtype(xp, found)
        new = [
            warmup_codebook(cast(xp, found[:, j, :], dt), spec.num_codes, valid=ok)
            for j in range(spec.num_codebooks)
        ]
        new_books = xp.where(count >= spec.num_codes, cast(xp, xp.stack(new), books.dtype), books)
        return (new_books, *zero, ops.clear_warmup(store))

    def replace(s: tuple[Any, ...]) -> tuple[Any, ...]:
        books, hits, used, store = s
        m, k, w = books.shape
        donors = draws.get("donors", (m, k))
        perturbation = draws.get("perturbation", (m, k, w))
        new = [
            replace_dead_codes(
                books[j, ...],
                hits[j, ...],
                used[j, ...],
                replacement_iters=int(spec.replacement_iters or 1),
                discard_threshold=spec.discard_threshold,
                perturb_eps=spec.perturb_eps,
                uniform=donors[j, ...],
                noise=cast(xp, perturbation[j, ...], books.dtype),
            )[0]
            for j in range(m)
        ]
        return (ops.broadcast_books(xp.stack(new)), *zero, store)

    def window(s: tuple[Any, ...]) -> tuple[Any, ...]:
        return _cond(ops, due, replace, _keep, s)

    lazy = ops if ops.branch is None else dataclasses.replace(ops, cond=ops.branch)
    books, hits, used, store = _cond(lazy, init_now, initialise, window, (books, hits, used, store))
    events = Events(replaced=_and_not(due, init_now), initialised=init_now)
    return LayerState(books, call, hits, used, store), events


def _cond(ops: LayerOps, pred: Any, if_true: Any, if_false: Any, x: Any) -> Any:
    """A branch decided on the host when the predicate is a Python bool, else ``ops.cond``."""
    if isinstance(pred, bool):
        return if_true(x) if pred else if_false(x)
    return ops.cond(pred, if_true, if_false, x)


def _and_not(a: Any, b: Any) -> Any:
    if isinstance(a, bool) and isinstance(b, bool):
        return a and not b
    if isinstance(b, bool):
        return a if not b else False
    if isinstance(a, bool):
        return (~b) if a else False
    return a & ~b
