"""Turn the draw-explicit core into a backend's public functions.

A backend supplies three things -- its stop-gradient, a sampler for the draws the user did not
pass, and the name of its randomness keyword (``generator`` for torch, ``key`` for JAX) -- and
gets every SPEC section 10/11 function with the contract's signature. The functions validate
their arguments first, then sample (on the device of ``z``), then run the core.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from diveq._checks import check_codebook, check_codebooks, check_noise_std
from diveq.core import _baselines, _composite, _estimators, _search, _state
from diveq.core._common import Array, StopGradient

__all__ = ["Sampler", "bind"]


class Sampler(Protocol):
    """Draws standard-normal (``"normal"``) and ``[0, 1)`` (``"uniform"``) arrays."""

    def __call__(
        self, rng: Any, requests: list[tuple[str, tuple[int, ...]]], like: Array
    ) -> list[Array]:
        """One array per ``(kind, shape)`` request, with the dtype and device of ``like``."""
        ...


# name -> (core function, codebook layout, space filling, noise shape, dither, noise_std)
_TABLE: dict[str, tuple[Callable[..., Any], str, bool, str | None, bool, bool]] = {
    "diveq": (_estimators.diveq, "single", False, "z", False, True),
    "sf_diveq": (_estimators.sf_diveq, "single", True, "z2", True, True),
    "product_diveq": (_composite.product_diveq, "product", False, "z", False, True),
    "residual_diveq": (_composite.residual_diveq, "residual", False, "z", False, True),
    "product_sf_diveq": (_composite.product_sf_diveq, "product", True, "z", True, True),
    "residual_sf_diveq": (_composite.residual_sf_diveq, "residual", True, "z", True, True),
    "nsvq": (_baselines.nsvq, "single", False, "z", False, False),
}
_PLAIN: dict[str, Callable[..., Any]] = {
    "nearest": _search.nearest,
    "quantize": _search.quantize,
    "sf_quantize": _search.sf_quantize,
    "product_quantize": _composite.product_quantize,
    "residual_quantize": _composite.residual_quantize,
    "product_sf_quantize": _composite.product_sf_quantize,
    "residual_sf_quantize": _composite.residual_sf_quantize,
    "ste": _baselines.ste,
    "rotation_trick": _baselines.rotation_trick,
    "commitment_loss": _baselines.commitment_loss,
}


def _validate(layout: str, space_filling: bool, z: Array, books: Array) -> None:
    low = 2 if space_filling else 1
    if layout == "single":
        check_codebook(z, books, min_codes=low)
    else:
        check_codebooks(z, books, product=layout == "product", min_codes=low)


def _stochastic(name: str, rng_name: str, sample: Sampler, sg: StopGradient, doc: str):
    core_fn, layout, space_filling, noise_kind, has_dither, has_std = _TABLE[name]
    params = [
        p for p in inspect.signature(core_fn).parameters.values() if p.name != "stop_gradient"
    ]
    params.insert(-1, inspect.Parameter(rng_name, inspect.Parameter.KEYWORD_ONLY, default=None))
    signature = inspect.Signature(params)

    def fn(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        kw = dict(bound.arguments)
        rng = kw.pop(rng_name)
        z, books = kw.pop(params[0].name), kw.pop(params[1].name)
        _validate(layout, space_filling, z, books)
        noise_std = kw["noise_std"] if has_std else 1.0
        check_noise_std(noise_std)
        requests, slots = [], []
        deterministic = isinstance(noise_std, (int, float)) and noise_std == 0
        if kw["noise"] is None and not deterministic:
            shape = tuple(z.shape) if noise_kind == "z" else (2, *z.shape)
            requests.append(("normal", shape))
            slots.append("noise")
        if has_dither and kw["dither"] is None:
            k = int(books.shape[-2])
            requests.append(
                ("uniform", (k - 1,) if layout == "single" else (books.shape[0], k - 1))
            )
            slots.append("dither")
        if requests:
            kw.update(zip(slots, sample(rng, requests, z), strict=False))
        return core_fn(z, books, stop_gradient=sg, **kw)

    return _finish(fn, name, signature, doc)


def _plain(name: str, core_fn: Callable[..., Any], sg: StopGradient | None, doc: str):
    params = [
        p for p in inspect.signature(core_fn).parameters.values() if p.name != "stop_gradient"
    ]
    takes_sg = "stop_gradient" in inspect.signature(core_fn).parameters
    extra = {"stop_gradient": sg} if sg is not None and takes_sg else {}

    def fn(*args: Any, **kwargs: Any) -> Any:
        return core_fn(*args, **kwargs, **extra)

    return _finish(fn, name, inspect.Signature(params), doc)


def _finish(fn: Callable[..., Any], name: str, signature: inspect.Signature, doc: str):
    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__doc__ = doc.format(name=name)
    return fn


def bind(
    *,
    module: str,
    rng_name: str,
    sample: Sampler,
    stop_gradient: StopGradient,
    doc: str,
) -> dict[str, Callable[..., Any]]:
    """Every public function for one backend.

    Parameters
    ----------
    module : str
        ``__module__`` of the produced functions (the backend's import path).
    rng_name : str
        Keyword for the randomness source (``"generator"``, ``"key"``).
    sample : Sampler
        Draws the arrays the caller did not pass.
    stop_gradient : callable
        The backend's stop-gradient.
    doc : str
        Docstring template; ``{name}`` is replaced by the function name.

    Returns
    -------
    dict
        Function name to function, for the backend module to export.
    """
    out: dict[str, Callable[..., Any]] = {}
    for name in _TABLE:
        out[name] = _stochastic(name, rng_name, sample, stop_gradient, doc)
    for name, core_fn in _PLAIN.items():
        out[name] = _plain(name, core_fn, stop_gradient, doc)
    for name, core_fn in (("code_usage", _state.code_usage), ("perplexity", _state.perplexity)):
        out[name] = _plain(name, core_fn, None, doc)
    for fn in out.values():
        fn.__module__ = module
    return out
