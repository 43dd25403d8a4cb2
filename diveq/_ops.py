"""The public functions, declared once: what each one takes, draws, returns and says.

One :class:`Op` per function of every implementation (:mod:`diveq.reference`, :mod:`diveq.core`,
the backends). The backends' binding (:mod:`diveq.core._bind`) builds each function's signature
and docstring from it, the conformance kit (:mod:`diveq.testing`) generates inputs and draws
from it, and the tests parametrise over it. Framework-free: the standard library only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FUNCTIONS", "OPS", "OPS_BY_NAME", "PARAMS", "REQUIRED", "RNG", "Op", "Param"]

#: Placeholder of the backend's randomness keyword (``generator`` for torch, ``key`` for JAX)
#: in :attr:`Op.parameters`.
RNG = "<rng>"


@dataclass(frozen=True)
class Param:
    """How one parameter is typed and documented, with ``{...}`` fields filled per function.

    Attributes
    ----------
    annotation : str
        Type annotation; ``{array}`` is the backend's array type.
    kind : str
        The numpydoc type line after ``name :``.
    text : str
        The description.
    default : object
        Default value; :data:`REQUIRED` for none.
    """

    annotation: str
    kind: str
    text: str
    default: Any = None


REQUIRED: Any = object()

#: The parameters of the public functions. Fields: ``{array}`` (the backend's array type),
#: ``{books}``, ``{book_shape}``, ``{min_codes}``, ``{noise_shape}``, ``{dither_shape}``,
#: ``{per_book}``, ``{rng}`` (the backend's randomness keyword).
PARAMS: dict[str, Param] = {
    "z": Param("{array}", "{array}, shape (..., D)", "Latents, real floating dtype.", REQUIRED),
    "codebook": Param(
        "{array}", "{array}, shape (K, D)", "Codewords, ``K >= {min_codes}``.", REQUIRED
    ),
    "codebooks": Param(
        "{array}",
        "{array}, shape {book_shape}",
        "``M`` codebooks of ``K >= {min_codes}`` codewords{per_book}.",
        REQUIRED,
    ),
    "noise_std": Param(
        "float | {array}",
        "float or {array}, default 1e-3",
        "Standard deviation ``s >= 0`` of the directional noise; ``0`` is the deterministic "
        "variant, which needs no ``noise``.",
        1e-3,
    ),
    "dither": Param(
        "{array} | None",
        "{array}, shape {dither_shape}, optional",
        "Dither ``lam`` in ``[0, 1)``: one per segment{per_book}, shared by all rows. Drawn "
        "with ``{rng}`` when not given.",
    ),
    "noise": Param(
        "{array} | None",
        "{array}, shape {noise_shape}, optional",
        "Standard-normal draws ``xi``. Drawn with ``{rng}`` when needed and not given.",
    ),
    "chunk_size": Param(
        "int | str | None",
        "int or str, optional",
        "Rows per tile of the distance computation, which bounds its memory; ``None`` picks a "
        "size for the device. ``nearest``, ``quantize`` and ``sf_quantize`` also take "
        '``"fused"`` (the opt-in fused GPU search kernel) and ``"fused-interpret"`` (the same '
        "kernel in the framework's interpreter); see the docs' Performance page.",
    ),
    "indices": Param(
        "{array}",
        "{array} of int",
        "Code indices in ``[-1, K)``, any shape; ``-1`` marks entries without a code.",
        REQUIRED,
    ),
    "num_codes": Param("int", "int", "``K >= 1``.", REQUIRED),
    "beta": Param("float", "float, default 0.25", "Weight of the commitment term.", 0.25),
    # the EMA codebook
    "state": Param(
        "EMAState",
        "EMAState",
        "``(codebook (K, D), cluster_size (K,), embed_sum (K, D))`` before the step.",
        REQUIRED,
    ),
    "counts": Param(
        "{array}",
        "{array}, shape (K,)",
        "Rows per code of the call (``ema_statistics``), summed over data-parallel workers.",
        REQUIRED,
    ),
    "sums": Param("{array}", "{array}, shape (K, D)", "The sum of those rows per code.", REQUIRED),
    "decay": Param("float", "float, default 0.99", "EMA decay in ``[0, 1]``.", 0.99),
    "eps": Param("float", "float, default 1e-5", "Laplace smoothing ``>= 0`` of the sizes.", 1e-5),
    "tau": Param(
        "float | {array}",
        "float or {array}, default 1.0",
        "Temperature ``> 0`` of the soft sample (anneal it with :func:`diveq.gumbel_temperature`"
        "); an array is traced by JAX, so a new value compiles nothing.",
        1.0,
    ),
    "hard": Param(
        "bool",
        "bool, default False",
        "Straight-through: the values are the sampled codewords ``c_k``, the gradient that of "
        "the soft sample.",
        False,
    ),
    "gumbel": Param(
        "{array} | None",
        "{array}, shape z.shape[:-1] + (K,), optional",
        "Standard Gumbel draws ``-log(-log U)``. Drawn with ``{rng}`` when not given.",
    ),
}

_BOOK_SHAPES = {"single": "(K, D)", "product": "(M, K, D / M)", "residual": "(M, K, D)"}
_PER_BOOK = {
    "single": "",
    "product": "; codebook ``m`` quantises the ``m``-th block of ``D / M`` features",
    "residual": "; codebook ``m`` quantises what the ones before it left",
}


@dataclass(frozen=True)
class Op:
    """One public function, the same in every implementation.

    The first seven attributes describe a function ``f(z, codebook(s), ...)`` for the
    conformance kit; the rest document it.

    Attributes
    ----------
    name : str
        Function name, the same in every implementation.
    books : {"single", "product", "residual"}
        Codebook layout: ``(K, D)``, ``(M, K, D/M)`` or ``(M, K, D)``.
    space_filling : bool
        Polyline methods (``K >= 2``, result has ``weights``).
    noise : {None, "z", "z2"}
        Shape of the ``noise`` draw: none, ``z.shape`` or ``(2, *z.shape)``
        (see :meth:`noise_shape`).
    dither : bool
        Whether the op takes a ``dither`` draw (see :meth:`dither_shape`).
    noise_std : bool
        Whether the op takes ``noise_std``.
    train : bool
        Differentiable estimator (has a reference ``_vjp``); otherwise hard inference.
    gumbel : bool
        Whether the op takes a ``gumbel`` draw (see :meth:`gumbel_shape`) and the options
        ``tau`` and ``hard`` (the Gumbel-softmax quantiser).
    summary : str
        One-line summary of the function's docstring.
    params : tuple of str
        Parameter names for a function that is not ``f(z, codebook(s), ...)``, with ``"*"``
        before the keyword-only ones; empty: derived (see :attr:`parameters`).
    returns : tuple of str
        ``(annotation, kind, text)`` of the result for such a function; empty: derived.
    docs : tuple of tuple of str
        ``(name, kind, text)`` replacing the :data:`PARAMS` entry of a parameter.
    expect : tuple of str
        ``(expression, its repr)`` for the Examples section, run on ``z = [[0.25, 0.75]]`` and
        small codebooks on which every selection is clear; empty: derived (the indices).
    errors : tuple of tuple of str
        ``(exception name, condition)`` added to the Raises section.
    """

    name: str
    books: str = "single"
    space_filling: bool = False
    noise: str | None = None
    dither: bool = False
    noise_std: bool = False
    train: bool = False
    gumbel: bool = False
    summary: str = ""
    params: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()
    docs: tuple[tuple[str, str, str], ...] = ()
    expect: tuple[str, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()

    @property
    def min_codes(self) -> int:
        """Smallest number of codewords per codebook: 2 for polylines, else 1."""
        return 2 if self.space_filling else 1

    @property
    def stochastic(self) -> bool:
        """Whether the op takes random draws (and so the backend's randomness keyword)."""
        return self.noise is not None or self.dither or self.gumbel

    @property
    def book_name(self) -> str:
        """Name of the codebook argument: ``"codebook"`` or ``"codebooks"``."""
        return "codebook" if self.books == "single" else "codebooks"

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names in signature order: ``"*"`` starts the keyword-only ones and
        ``"<rng>"`` stands for the backend's randomness keyword."""
        if self.params:
            return self.params
        if self.gumbel:
            return ("z", self.book_name, "*", "tau", "hard", "gumbel", RNG)
        draws = [name for name in ("noise_std", "dither", "noise") if getattr(self, name)]
        return ("z", self.book_name, "*", *draws, *([RNG] if self.stochastic else []), "chunk_size")

    @property
    def core(self) -> Callable[..., Any]:
        """The :mod:`diveq.core` function (imported on first use)."""
        return getattr(importlib.import_module("diveq.core"), self.name)

    def book_shape(self, m: int, k: int, d: int) -> tuple[int, ...]:
        """Codebook shape for ``M`` books, ``K`` codes and feature size ``D``."""
        if self.books == "single":
            return (k, d)
        return (m, k, d // m) if self.books == "product" else (m, k, d)

    def noise_shape(self, z_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Shape of the ``noise`` draw for latents of shape ``z_shape`` (``None``: no noise)."""
        if self.noise is None:
            return None
        return (2, *z_shape) if self.noise == "z2" else tuple(z_shape)

    def dither_shape(self, books_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Shape of the ``dither`` draw for codebook(s) of shape ``books_shape``."""
        if not self.dither:
            return None
        return (*books_shape[:-2], int(books_shape[-2]) - 1)

    def gumbel_shape(
        self, z_shape: tuple[int, ...], books_shape: tuple[int, ...]
    ) -> tuple[int, ...] | None:
        """Shape of the ``gumbel`` draw: ``z.shape[:-1] + (K,)`` (``None``: no such draw)."""
        if not self.gumbel:
            return None
        return (*tuple(z_shape)[:-1], int(books_shape[-2]))

    @property
    def example(self) -> tuple[str, str]:
        """``(expression, its repr)`` of the Examples section; ``{array}`` is the backend's
        array constructor, ``{rng}`` its randomness keyword argument (with a leading comma)."""
        if self.expect:
            return self.expect[0], self.expect[1]
        # Codeword 0 everywhere but in the second codebook; one segment per codebook.
        want = "0" if self.books == "single" else "0, 0" if self.space_filling else "0, 1"
        want = f"[{want}]" if self.books == "single" else f"[[{want}]]"
        return f"dq.{self.name}(z, {self.book_name}{{rng}}).indices.tolist()", want

    def fields(self) -> dict[str, str]:
        """The ``{...}`` fields of :data:`PARAMS` that depend on the op (shapes, layout)."""
        return {
            "books": self.book_name,
            "book_shape": _BOOK_SHAPES[self.books],
            "min_codes": str(self.min_codes),
            "noise_shape": "``(2, *z.shape)``" if self.noise == "z2" else "z.shape",
            "dither_shape": "(K - 1,)" if self.books == "single" else "(M, K - 1)",
            "per_book": _PER_BOOK[self.books],
            "index_shape": "z.shape[:-1]" if self.books == "single" else "z.shape[:-1] + (M,)",
        }


def _op(name: str, summary: str, **spec: Any) -> Op:
    return Op(name, summary=summary, **spec)


_DIVEQ = {"noise": "z", "noise_std": True, "train": True}
_SF_DIVEQ = {**_DIVEQ, "space_filling": True, "dither": True}

#: The functions ``f(z, codebook(s), ...)`` the conformance kit checks, in its order.
OPS: tuple[Op, ...] = (
    _op(
        "nearest",
        "Index of the nearest codeword of every row (the first one on ties).",
        returns=("{array}", "{array} of int, shape z.shape[:-1]", "The index ``k`` per row."),
        expect=("dq.nearest(z, codebook).tolist()", "[0]"),
    ),
    _op("quantize", "Hard vector quantisation: the nearest codeword of every row."),
    _op(
        "sf_quantize",
        "Space-filling inference: the exact nearest point of the codeword polyline.",
        space_filling=True,
    ),
    _op("diveq", "DiVeQ: vector quantisation made differentiable by reparameterisation.", **_DIVEQ),
    _op(
        "sf_diveq",
        "SF-DiVeQ: DiVeQ onto a dithered point of the codeword polyline.",
        **{**_SF_DIVEQ, "noise": "z2"},
    ),
    _op(
        "product_diveq",
        "Product DiVeQ: each block of features to its own codebook, then one DiVeQ step.",
        books="product",
        **_DIVEQ,
    ),
    _op(
        "residual_diveq",
        "Residual DiVeQ: each codebook quantises the residual, then one DiVeQ step.",
        books="residual",
        **_DIVEQ,
    ),
    _op(
        "product_sf_diveq",
        "Product SF-DiVeQ: a dithered polyline point per block, then one DiVeQ step.",
        books="product",
        **_SF_DIVEQ,
    ),
    _op(
        "residual_sf_diveq",
        "Residual SF-DiVeQ: a dithered polyline point per stage, then one DiVeQ step.",
        books="residual",
        **_SF_DIVEQ,
    ),
    _op(
        "product_quantize",
        "Product quantisation: the nearest codeword of each block of features.",
        books="product",
    ),
    _op(
        "residual_quantize",
        "Residual quantisation: the nearest codeword of each stage's residual, summed.",
        books="residual",
    ),
    _op(
        "product_sf_quantize",
        "Product space-filling inference: the exact polyline projection of each block.",
        books="product",
        space_filling=True,
    ),
    _op(
        "residual_sf_quantize",
        "Residual space-filling inference: the exact polyline projection of each residual.",
        books="residual",
        space_filling=True,
    ),
    _op(
        "ste", "Straight-through estimator: forward ``c_k``, gradient passed to ``z``.", train=True
    ),
    _op(
        "nsvq",
        "NSVQ: ``z`` moved by the quantisation error's length in a random direction.",
        noise="z",
        train=True,
    ),
    _op(
        "rotation_trick",
        "Rotation trick: forward ``c_k``, gradient rotated and scaled from ``c_k`` to ``z``.",
        train=True,
    ),
    _op(
        "gumbel_softmax",
        "Gumbel-softmax: a relaxed sample of the codeword, logits ``-||z - c_k||^2``.",
        gumbel=True,
        train=True,
        expect=(
            "dq.gumbel_softmax(z, codebook, hard=True, gumbel={array}([[0.0, 0.0]])).indices"
            ".tolist()",
            "[0]",
        ),
    ),
)

_EMA_STATE = "EMAState", "EMAState"
#: The EMA codebook (van den Oord et al. 2017; Razavi et al. 2019): state, statistics, update.
_EMA: tuple[Op, ...] = (
    _op(
        "ema_init",
        "The EMA state of a fresh codebook: every code as if hit once, at its own position.",
        params=("codebook",),
        returns=(*_EMA_STATE, "``codebook``, ``cluster_size = 1`` and ``embed_sum = codebook``."),
        expect=("dq.ema_init({array}([[0.0], [1.0]])).cluster_size.tolist()", "[1.0, 1.0]"),
        errors=(("ValueError", "``codebook`` is not ``(K, D)``"),),
    ),
    _op(
        "ema_statistics",
        "Per-code row counts and row sums of one call; rows with index ``-1`` are left out.",
        params=("z", "indices", "num_codes"),
        returns=(
            "tuple[{array}, {array}]",
            "tuple of {array}",
            "``counts`` ``(K,)`` and ``sums`` ``(K, D)`` of the rows with each code, in the "
            "dtype of ``z`` (at least float32).",
        ),
        docs=(
            (
                "indices",
                "{array} of int, shape z.shape[:-1]",
                "The code of each row in ``[-1, K)``; rows with ``-1`` may hold anything.",
            ),
        ),
        expect=("dq.ema_statistics(z, dq.nearest(z, codebook), 2)[0].tolist()", "[1.0, 0.0]"),
    ),
    _op(
        "ema_update",
        "One EMA step of the codebook: moving averages, Laplace smoothing, ``c = m / N~``.",
        params=("state", "counts", "sums", "*", "decay", "eps"),
        returns=(*_EMA_STATE, "The new state (codes of smoothed size 0 keep their codeword)."),
        expect=(
            "dq.ema_update(dq.ema_init({array}([[0.0], [1.0]])), {array}([3.0, 0.0]), "
            "{array}([[3.0], [0.0]]), decay=0.5, eps=0.0).codebook.tolist()",
            "[[0.75], [1.0]]",
        ),
        errors=(
            ("TypeError", "an array is not real floating or ``decay`` / ``eps`` not a number"),
            ("ValueError", "the shapes do not fit ``(K, D)``, ``(K,)``, ``(K, D)``"),
            ("ValueError", "``decay`` is outside ``[0, 1]`` or ``eps`` negative"),
        ),
    ),
)

#: Every public function: :data:`OPS`, then the loss, the usage statistics and the EMA codebook.
FUNCTIONS: tuple[Op, ...] = (
    *OPS,
    _op(
        "commitment_loss",
        "VQ-VAE codebook + commitment loss, for the straight-through and rotation-trick baselines.",
        params=("z", "codebook", "indices", "*", "beta"),
        returns=(
            "{array}",
            "{array}, shape ()",
            "``mean((sg z - c_k)^2) + beta mean((z - sg c_k)^2)``; ``0`` when ``z`` has no rows.",
        ),
        expect=("float(dq.commitment_loss(z, codebook, dq.nearest(z, codebook)))", "0.390625"),
        docs=(
            (
                "indices",
                "{array} of int, shape z.shape[:-1]",
                "The selected codewords ``k``, in ``[0, K)`` (e.g. ``ste(z, codebook).indices``).",
            ),
        ),
    ),
    _op(
        "code_usage",
        "Number of entries of ``indices`` on each code; entries ``-1`` are ignored.",
        params=("indices", "num_codes", "*", "chunk_size"),
        returns=("{array}", "{array} of int, shape (K,)", "``counts[k]``: entries equal to ``k``."),
        expect=("dq.code_usage({array}([0, 2, 2, -1]), 3).tolist()", "[1, 0, 2]"),
    ),
    _op(
        "perplexity",
        "Codebook perplexity ``exp(-sum_k p_k log(p_k + 1e-10))`` of ``indices``.",
        params=("indices", "num_codes"),
        returns=(
            "{array}",
            "{array}, shape ()",
            "``K`` for uniform usage, ``1`` for a single code or no valid entry (``-1``).",
        ),
        expect=("round(float(dq.perplexity({array}([0, 2, 2, -1]), 3)), 3)", "1.89"),
    ),
    *_EMA,
)

OPS_BY_NAME: dict[str, Op] = {op.name: op for op in FUNCTIONS}
