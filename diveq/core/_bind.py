"""Turn the draw-explicit core into a backend's public functions.

A backend supplies its :class:`~diveq.core._faces.Idiom` (array type and randomness keyword:
``generator`` for torch, ``key`` for JAX), its stop-gradient and a sampler for the draws the
user did not pass, and gets one function per entry of the table :data:`diveq._ops.FUNCTIONS`,
with the signature and docstring the table gives it. The functions validate their arguments
first, then sample (on the device of ``z``), then run the core.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from diveq._checks import check_codebook, check_codebooks, check_noise_std, check_tau
from diveq._ops import FUNCTIONS, Op
from diveq.core._common import Array, Native, StopGradient
from diveq.core._faces import Idiom, docstring, signature

__all__ = ["Sampler", "bind"]


class Sampler(Protocol):
    """Draws standard-normal (``"normal"``), ``[0, 1)`` (``"uniform"``) and standard Gumbel
    (``"gumbel"``, finite) arrays."""

    def __call__(
        self, rng: Any, requests: list[tuple[str, tuple[int, ...]]], like: Array
    ) -> list[Array]:
        """One array per ``(kind, shape)`` request, with the dtype and device of ``like``."""
        ...


def _validate(op: Op, z: Array, books: Array) -> None:
    if op.books == "single":
        check_codebook(z, books, min_codes=op.min_codes)
    else:
        check_codebooks(z, books, product=op.books == "product", min_codes=op.min_codes)


def _stochastic(
    op: Op, sig: inspect.Signature, rng_name: str, sample: Sampler, sg: StopGradient
) -> Callable[..., Any]:
    core_fn = op.core

    def fn(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        kw = dict(bound.arguments)
        rng = kw.pop(rng_name)
        z, books = kw.pop("z"), kw.pop(op.book_name)
        _validate(op, z, books)
        noise_std = kw.get("noise_std", 1.0)
        check_noise_std(noise_std)
        deterministic = isinstance(noise_std, (int, float)) and noise_std == 0
        requests, slots = [], []
        noise_shape = op.noise_shape(tuple(z.shape))
        if noise_shape is not None and kw["noise"] is None and not deterministic:
            requests.append(("normal", noise_shape))
            slots.append("noise")
        dither_shape = op.dither_shape(tuple(books.shape))
        if dither_shape is not None and kw["dither"] is None:
            requests.append(("uniform", dither_shape))
            slots.append("dither")
        gumbel_shape = op.gumbel_shape(tuple(z.shape), tuple(books.shape))
        if gumbel_shape is not None:
            check_tau(kw["tau"])  # before sampling, as every other argument
            if kw["gumbel"] is None:
                requests.append(("gumbel", gumbel_shape))
                slots.append("gumbel")
        if requests:
            kw.update(zip(slots, sample(rng, requests, z), strict=True))
        return core_fn(z, books, stop_gradient=sg, **kw)

    return fn


def _plain(op: Op, sg: StopGradient) -> Callable[..., Any]:
    core_fn = op.core
    takes_sg = "stop_gradient" in inspect.signature(core_fn).parameters
    extra = {"stop_gradient": sg} if takes_sg else {}

    def fn(*args: Any, **kwargs: Any) -> Any:
        return core_fn(*args, **kwargs, **extra)

    return fn


def bind(
    idiom: Idiom,
    *,
    sample: Sampler,
    stop_gradient: StopGradient,
    reparam: Callable[..., Array] | None = None,
) -> dict[str, Callable[..., Any]]:
    """Every public function for one backend.

    Parameters
    ----------
    idiom : Idiom
        The backend's module, array type and randomness keyword (names the functions, types
        their signatures and fills their docstrings).
    sample : Sampler
        Draws the arrays the caller did not pass.
    stop_gradient : callable
        The backend's stop-gradient.
    reparam : callable, optional
        A native version of :func:`diveq.core._estimators.reparam` (same arguments after
        ``xp``, and ``sg`` left out), used by every estimator in place of the generic one.

    Returns
    -------
    dict
        Function name to function, for the backend module to export.
    """
    if reparam is not None:
        stop_gradient = Native(stop_gradient, reparam)
    out: dict[str, Callable[..., Any]] = {}
    for op in FUNCTIONS:
        sig = signature(op, idiom)
        if op.stochastic:
            fn = _stochastic(op, sig, idiom.rng_name, sample, stop_gradient)
        else:
            fn = _plain(op, stop_gradient)
        fn.__name__ = fn.__qualname__ = op.name
        fn.__module__ = idiom.module
        fn.__signature__ = sig  # type: ignore[attr-defined]
        fn.__doc__ = docstring(op, idiom)
        out[op.name] = fn
    return out
