"""The eight classes of the official ``diveq`` 0.1.3 package, as diveq torch layers.

Each class is the native layer (:class:`~diveq.backends.torch.DiVeQ`, ...) built from the
official arguments, with the official call results: ``forward(z)`` returns the plain tuple
``(z_q, indices, perplexity)`` (composites: lists of per-codebook indices and perplexities,
perplexities as Python floats) and ``inference(z)`` the hard quantisation with the official
index meaning (SF: the nearest codeword, not the segment). State dicts are the native ones
(they load into the native layers unchanged); official state dicts load too.
"""

from __future__ import annotations

from typing import Any

import torch

import diveq.backends.torch as dq
from diveq.backends.torch._layer import Quantizer
from diveq.compat._official_state import convert_into

__all__ = [
    "DIVEQ",
    "SFDIVEQ",
    "DIVEQDetach",
    "ProductDIVEQ",
    "ProductSFDIVEQ",
    "ResidualDIVEQ",
    "ResidualSFDIVEQ",
    "SFDIVEQDetach",
]

Official = tuple[torch.Tensor, Any, Any]


class _Official(Quantizer):
    """What the eight classes share: the official results, ``inference`` and state loading."""

    #: ``uniform_init=False`` draws the official ``N(0, 1) / K`` instead of ``U[0, 1/K)``.
    _normal_init = False

    def _official_init(self, uniform_init: bool) -> None:
        if not uniform_init:
            self._normal_init = True
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the codebook(s) as the official class does and zero the usage counters."""
        super().reset_parameters()
        if self._normal_init:
            with torch.no_grad():
                self._param().normal_(0.0, 1.0 / self.spec.num_codes)

    # -- the official attribute names ---------------------------------------------------------
    @property
    def num_embeddings(self) -> int:
        """``num_codes``."""
        return self.spec.num_codes

    @property
    def embedding_dim(self) -> int:
        """``dim``."""
        return self.spec.dim

    @property
    def noise_var(self) -> float:
        """``noise_std`` (the official code uses its ``noise_var`` as a standard deviation)."""
        return self.spec.noise_std

    # -- calls --------------------------------------------------------------------------------
    def forward(  # type: ignore[override]
        self, z: torch.Tensor, mask: torch.Tensor | None = None, *, generator: Any = None
    ) -> Official:
        """Quantise ``z`` as the official class does: ``(z_q, indices, perplexity)``.

        Train mode runs the layer's estimator and advances its state (the native ``forward``);
        eval mode returns :meth:`inference` and changes no state (the official classes train
        and count in eval mode too).
        """
        if not self.training:
            return self.inference(z, mask)
        out = super().forward(z, mask, generator=generator)
        return self._results(out.values, out.indices)

    @torch.no_grad()
    def inference(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> Official:
        """Hard quantisation of ``z``, as the official ``inference``; changes no state.

        Returns ``(z_q, indices, perplexity)``. ``z_q`` is the native hard inference (for SF
        layers the exact nearest point of the polyline). ``indices`` are the nearest codewords,
        as the official ones: for SF layers the nearest vertex of ``z`` (of each stage's input
        for residual layers), not the segment the native layers return.
        """
        enc = self.encode(z, mask)
        idx = enc.indices
        if self.spec.space_filling:
            idx = torch.where(idx >= 0, self._vertices(z, enc), idx)
        return self._results(enc.values, idx)

    def _vertices(self, z: torch.Tensor, enc: Any) -> torch.Tensor:
        """Nearest codeword of each row (composites: of each block or stage input)."""
        s, books = self.spec, self._books().detach()
        rows = torch.movedim(z, s.feature_axis, -1).to(books.dtype)
        if s.layout == "single":
            return dq.nearest(rows, books[0])
        if s.layout == "product":
            return dq.product_quantize(rows, books).indices
        out, rest, idx, weights = [], rows, enc.indices, enc.weights  # codes: trailing axis M
        for m in range(s.num_codebooks):
            out.append(dq.nearest(rest, books[m]))
            i = idx[..., m].clamp(min=0)
            start, end = books[m][i], books[m][(i + 1).clamp(max=s.num_codes - 1)]
            rest = rest - (start + weights[..., m, None] * (end - start))
        return torch.stack(out, dim=-1)

    def _results(self, values: torch.Tensor, indices: torch.Tensor) -> Official:
        k = self.spec.num_codes
        if not self.spec.composite:
            return values, indices, float(dq.perplexity(indices, k))
        books = range(self.spec.num_codebooks)
        perplexities = torch.stack([dq.perplexity(indices[..., m], k) for m in books])
        return values, [indices[..., m] for m in books], perplexities.tolist()

    # -- official checkpoints -----------------------------------------------------------------
    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kw: Any) -> None:
        if prefix + "iter_counter" in state_dict or prefix + "codebook_usage" in state_dict:
            convert_into(state_dict, prefix, self.spec)
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)


class _OfficialComposite(_Official):
    @property
    def codebook(self) -> torch.Tensor:
        """``codebooks`` ``(M, K, D')``, under the official name."""
        return self._param()


def _options(
    noise_var: float,
    replacement_iters: int,
    discard_threshold: float,
    perturb_eps: float,
    codebook_reset: bool = True,
) -> dict[str, Any]:
    """Native options from official ones. ``allow_warning``, ``verbose`` and ``latents_on_cpu``
    are accepted and have no effect: nothing is printed, the warm-up keeps only what it needs."""
    return {
        "noise_std": noise_var,
        "replacement_iters": replacement_iters if codebook_reset else None,
        "discard_threshold": discard_threshold,
        "perturb_eps": perturb_eps,
        "codebook_init": "positive",
    }


class DIVEQ(_Official, dq.DiVeQ):
    """The official ``DIVEQ``: :class:`~diveq.backends.torch.DiVeQ` from the official arguments.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``num_codes`` and ``dim``.
    noise_var : float, default 1e-3
        ``noise_std`` (the official code uses it as a standard deviation).
    replacement_iters, discard_threshold, perturb_eps : optional
        As in :class:`~diveq.backends.torch.DiVeQ` (100, 0.01, 1e-9).
    uniform_init : bool, default True
        ``U[0, 1/K)`` (``codebook_init="positive"``); ``False``: ``N(0, 1) / K``.
    allow_warning, verbose : bool
        Accepted; no effect (nothing is printed).
    codebook_reset : bool, default True
        ``False``: ``replacement_iters=None``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        noise_var: float = 0.001,
        replacement_iters: int = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        uniform_init: bool = True,
        allow_warning: bool = True,
        verbose: bool = True,
        codebook_reset: bool = True,
    ) -> None:
        opts = _options(
            noise_var, replacement_iters, discard_threshold, perturb_eps, codebook_reset
        )
        dq.DiVeQ.__init__(self, num_embeddings, embedding_dim, **opts)
        self._official_init(uniform_init)


class DIVEQDetach(_Official, dq.DiVeQ):
    """The official ``DIVEQDetach``: :class:`DIVEQ` without ``noise_var`` (``noise_std=0``).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``num_codes`` and ``dim``.
    replacement_iters, discard_threshold, perturb_eps, uniform_init, allow_warning, verbose, \
codebook_reset : optional
        As in :class:`DIVEQ`.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        replacement_iters: int = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        uniform_init: bool = True,
        allow_warning: bool = True,
        verbose: bool = True,
        codebook_reset: bool = True,
    ) -> None:
        opts = _options(0.0, replacement_iters, discard_threshold, perturb_eps, codebook_reset)
        dq.DiVeQ.__init__(self, num_embeddings, embedding_dim, **opts)
        self._official_init(uniform_init)


_SF_NOTE = """
    Training indices are segments (``0 .. K-2``), as the official ones; :meth:`inference`
    returns the nearest codeword (``0 .. K-1``), as the official one. During the warm-up the
    indices are ``-1`` (official: placeholder zeros) and the perplexity is 1.0 (official: 0.0).
"""


class SFDIVEQ(_Official, dq.SFDiVeQ):
    __doc__ = f"""The official ``SFDIVEQ``: :class:`~diveq.backends.torch.SFDiVeQ` from the
    official arguments.
    {_SF_NOTE}
    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``num_codes`` and ``dim``.
    noise_var : float, default 1e-3
        ``noise_std``.
    skip_iters, avg_iters : int, default 1000 and 50
        The warm-up schedule, as in :class:`~diveq.backends.torch.SFDiVeQ`.
    uniform_init, allow_warning : bool
        As in :class:`DIVEQ`.
    latents_on_cpu : bool
        Accepted; no effect (the warm-up keeps the rows of its last ``avg_iters`` calls only).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        noise_var: float = 0.001,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        uniform_init: bool = True,
        allow_warning: bool = True,
        latents_on_cpu: bool = False,
    ) -> None:
        dq.SFDiVeQ.__init__(
            self,
            num_embeddings,
            embedding_dim,
            noise_std=noise_var,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            codebook_init="positive",
        )
        self._official_init(uniform_init)


class SFDIVEQDetach(_Official, dq.SFDiVeQ):
    __doc__ = f"""The official ``SFDIVEQDetach``: :class:`SFDIVEQ` without ``noise_var``
    (``noise_std=0``), which here is the correct deterministic SF-DiVeQ (the official second
    term uses ``c_i - z``).
    {_SF_NOTE}
    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``num_codes`` and ``dim``.
    skip_iters, avg_iters, uniform_init, allow_warning, latents_on_cpu : optional
        As in :class:`SFDIVEQ`.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        uniform_init: bool = True,
        allow_warning: bool = True,
        latents_on_cpu: bool = False,
    ) -> None:
        dq.SFDiVeQ.__init__(
            self,
            num_embeddings,
            embedding_dim,
            noise_std=0.0,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            codebook_init="positive",
        )
        self._official_init(uniform_init)


_COMPOSITE = """The official ``{official}``: :class:`~diveq.backends.torch.{native}` with
    ``space_filling={sf}``, from the official argument order (``num_codebooks`` third).

    ``forward`` and :meth:`inference` return ``(z_q, indices_list, perplexity_list)``: one index
    tensor and one perplexity (a float) per codebook. The codebooks are the parameter
    ``codebooks`` ``{shape}``, also readable as ``codebook`` (the official name).

    Parameters
    ----------
    num_embeddings, embedding_dim, num_codebooks : int
        ``num_codes``, ``dim`` (the full latent size) and ``num_codebooks``.
    {params}
"""
_DIVEQ_PARAMS = """noise_var, replacement_iters, discard_threshold, perturb_eps, uniform_init, \
allow_warning, verbose, codebook_reset : optional
        As in :class:`DIVEQ`."""
_SF_PARAMS = """noise_var, skip_iters, avg_iters, replacement_iters, discard_threshold, \
perturb_eps, uniform_init, allow_warning, verbose, latents_on_cpu : optional
        As in :class:`DIVEQ` and :class:`SFDIVEQ`; replacement runs during the warm-up only."""


class ProductDIVEQ(_OfficialComposite, dq.ProductDiVeQ):
    __doc__ = _COMPOSITE.format(
        official="ProductDIVEQ",
        native="ProductDiVeQ",
        sf=False,
        shape="(M, K, D / M)",
        params=_DIVEQ_PARAMS,
    )

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_codebooks: int,
        noise_var: float = 0.001,
        replacement_iters: int = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        uniform_init: bool = True,
        allow_warning: bool = True,
        verbose: bool = True,
        codebook_reset: bool = True,
    ) -> None:
        opts = _options(
            noise_var, replacement_iters, discard_threshold, perturb_eps, codebook_reset
        )
        dq.ProductDiVeQ.__init__(self, num_codebooks, num_embeddings, embedding_dim, **opts)
        self._official_init(uniform_init)


class ResidualDIVEQ(_OfficialComposite, dq.ResidualDiVeQ):
    __doc__ = _COMPOSITE.format(
        official="ResidualDIVEQ",
        native="ResidualDiVeQ",
        sf=False,
        shape="(M, K, D)",
        params=_DIVEQ_PARAMS,
    )

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_codebooks: int,
        noise_var: float = 0.001,
        replacement_iters: int = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        uniform_init: bool = True,
        allow_warning: bool = True,
        verbose: bool = True,
        codebook_reset: bool = True,
    ) -> None:
        opts = _options(
            noise_var, replacement_iters, discard_threshold, perturb_eps, codebook_reset
        )
        dq.ResidualDiVeQ.__init__(self, num_codebooks, num_embeddings, embedding_dim, **opts)
        self._official_init(uniform_init)


class ProductSFDIVEQ(_OfficialComposite, dq.ProductDiVeQ):
    __doc__ = _COMPOSITE.format(
        official="ProductSFDIVEQ",
        native="ProductDiVeQ",
        sf=True,
        shape="(M, K, D / M)",
        params=_SF_PARAMS,
    )

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_codebooks: int,
        noise_var: float = 0.001,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        replacement_iters: int = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        uniform_init: bool = True,
        allow_warning: bool = True,
        verbose: bool = True,
        latents_on_cpu: bool = False,
    ) -> None:
        opts = _options(noise_var, replacement_iters, discard_threshold, perturb_eps)
        dq.ProductDiVeQ.__init__(
            self,
            num_codebooks,
            num_embeddings,
            embedding_dim,
            space_filling=True,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            **opts,
        )
        self._official_init(uniform_init)


class ResidualSFDIVEQ(_OfficialComposite, dq.ResidualDiVeQ):
    __doc__ = _COMPOSITE.format(
        official="ResidualSFDIVEQ",
        native="ResidualDiVeQ",
        sf=True,
        shape="(M, K, D)",
        params=_SF_PARAMS,
    )

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_codebooks: int,
        noise_var: float = 0.001,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        replacement_iters: int = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        uniform_init: bool = True,
        allow_warning: bool = True,
        verbose: bool = True,
        latents_on_cpu: bool = False,
    ) -> None:
        opts = _options(noise_var, replacement_iters, discard_threshold, perturb_eps)
        dq.ResidualDiVeQ.__init__(
            self,
            num_codebooks,
            num_embeddings,
            embedding_dim,
            space_filling=True,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            **opts,
        )
        self._official_init(uniform_init)
