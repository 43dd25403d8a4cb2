"""The reference layers: DiVeQ, SF-DiVeQ, and their product and residual forms.

Each class only builds its :class:`diveq._layer_spec.LayerSpec` (which checks the options);
the behaviour is :class:`~diveq.reference._layer.Layer`'s, and the state a
:class:`~diveq.reference.LayerState`. These classes are the normative layer semantics: the
torch and JAX layers are checked against them with identical explicit draws.
"""

from __future__ import annotations

from diveq._layer_spec import LayerSpec
from diveq.reference._layer import Layer

__all__ = ["DiVeQ", "ProductDiVeQ", "ResidualDiVeQ", "SFDiVeQ"]


class DiVeQ(Layer):
    """DiVeQ layer: one codebook ``(K, D)``, with dead-code replacement.

    Parameters
    ----------
    num_codes : int
        ``K >= 1``.
    dim : int
        ``D``, the feature size.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise (``0``: deterministic).
    replacement_iters : int or None, default 100
        Replacement window in train-mode calls; ``None`` turns replacement off.
    discard_threshold : float, default 0.01
        A code is dead at a window end if ``calls_used / replacement_iters <
        discard_threshold``.
    perturb_eps : float, default 1e-9
        Scale of the standard-normal perturbation added to a replaced code.
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook drawn by :meth:`init`: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> from diveq.reference import DiVeQ
    >>> layer = DiVeQ(2, 1, noise_std=0.0)
    >>> state = layer.init([[0.0], [1.0]])
    >>> out, state = layer.apply(state, np.array([[0.75], [0.5], [0.25]]))
    >>> out.values, out.indices, state.calls, state.hits
    (array([[1.], [0.], [0.]]), array([1, 0, 0]), 1, array([[2, 1]]))
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        noise_std: float = 1e-3,
        replacement_iters: int | None = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
    ) -> None:
        self.spec = LayerSpec(
            "single",
            1,
            num_codes,
            dim,
            noise_std=noise_std,
            replacement_iters=replacement_iters,
            discard_threshold=discard_threshold,
            perturb_eps=perturb_eps,
            feature_axis=feature_axis,
            codebook_init=codebook_init,
        )


class SFDiVeQ(Layer):
    """SF-DiVeQ layer: one polyline codebook ``(K, D)``, with the space-filling warm-up.

    Parameters
    ----------
    num_codes : int
        ``K >= 2``.
    dim : int
        ``D``, the feature size.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise (``0``: deterministic).
    skip_iters : int, default 1000
        ``S``: train-mode calls ``1 .. S - 1`` pass the rows through and quantisation starts
        at call ``S`` (``0`` or ``1``: from the first call, with the initial codebook).
    avg_iters : int, default 50
        ``A``: the rows of calls ``S - A .. S - 1`` initialise the codebook at call ``S - 1``.
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook drawn by :meth:`init`: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.

    Notes
    -----
    There is no dead-code replacement. Outputs carry ``weights``: the dither ``lam_i`` of
    the chosen segment in training, the projection parameter ``t`` at inference.

    Examples
    --------
    >>> import numpy as np
    >>> from diveq.reference import LayerDraws, SFDiVeQ
    >>> layer = SFDiVeQ(2, 1, noise_std=0.0, skip_iters=3, avg_iters=2)
    >>> state = layer.init(rng=np.random.default_rng(0))
    >>> out, state = layer.apply(state, np.array([[0.0], [1.0]]))
    >>> out.indices, out.weights
    (array([-1, -1]), array([0., 0.]))
    >>> out, state = layer.apply(state, np.array([[2.0], [3.0]]))
    >>> state.codebooks  # the means of the rows [0, 1] and [2, 3] of calls 1 and 2
    array([[[0.5], [2.5]]])
    >>> dither = LayerDraws(dither=np.array([0.5]))
    >>> out, state = layer.apply(state, np.array([[1.0]]), draws=dither)
    >>> out.values, out.indices, out.weights
    (array([[1.5]]), array([0]), array([0.5]))
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        noise_std: float = 1e-3,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
    ) -> None:
        self.spec = LayerSpec(
            "single",
            1,
            num_codes,
            dim,
            space_filling=True,
            noise_std=noise_std,
            replacement_iters=None,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            feature_axis=feature_axis,
            codebook_init=codebook_init,
        )


_COMPOSITE_PARAMETERS = """
    Parameters
    ----------
    num_codebooks : int
        ``M >= 1``.
    num_codes : int
        ``K`` per codebook (``>= 2`` when space-filling).
    dim : int
        ``D``, the feature size{dim_note}.
    space_filling : bool, default False
        SF-DiVeQ per {part} instead of the nearest codeword.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise (``0``: deterministic).
    replacement_iters : int or None, default 100
        Dead-code replacement window in train-mode calls (``None``: off); space-filling
        layers replace only during their warm-up.
    discard_threshold : float, default 0.01
        A code is dead at a window end if ``calls_used / replacement_iters <
        discard_threshold``.
    perturb_eps : float, default 1e-9
        Scale of the standard-normal perturbation added to a replaced code.
    skip_iters : int, default 1000
        Space-filling only: calls ``1 .. skip_iters - 1`` run {kind} DiVeQ; SF quantisation
        starts at call ``skip_iters``.
    avg_iters : int, default 50
        Space-filling only: the {part} latents of calls ``skip_iters - avg_iters ..
        skip_iters - 1`` initialise each codebook at call ``skip_iters - 1``.
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    init : {{"symmetric", "positive"}}, default "symmetric"
        Codebooks drawn by :meth:`init`: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.
"""


class _Composite(Layer):
    layout = ""

    def __init__(
        self,
        num_codebooks: int,
        num_codes: int,
        dim: int,
        *,
        space_filling: bool = False,
        noise_std: float = 1e-3,
        replacement_iters: int | None = 100,
        discard_threshold: float = 0.01,
        perturb_eps: float = 1e-9,
        skip_iters: int = 1000,
        avg_iters: int = 50,
        feature_axis: int = -1,
        codebook_init: str = "symmetric",
    ) -> None:
        self.spec = LayerSpec(
            self.layout,
            num_codebooks,
            num_codes,
            dim,
            space_filling=space_filling,
            noise_std=noise_std,
            replacement_iters=replacement_iters,
            discard_threshold=discard_threshold,
            perturb_eps=perturb_eps,
            skip_iters=skip_iters,
            avg_iters=avg_iters,
            feature_axis=feature_axis,
            codebook_init=codebook_init,
        )


class ProductDiVeQ(_Composite):
    __doc__ = (
        """Product DiVeQ layer: ``M`` codebooks ``(M, K, D / M)``, one per block of features.

    Block ``m`` is columns ``m D' .. (m + 1) D' - 1`` (``D' = D / M``); the composite point
    concatenates the blocks' points and one DiVeQ step moves ``z`` towards it.
"""
        + _COMPOSITE_PARAMETERS.format(
            dim_note=", a multiple of ``M``", part="block", kind="product"
        )
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from diveq.reference import ProductDiVeQ
    >>> layer = ProductDiVeQ(2, 2, 2, noise_std=0.0)
    >>> state = layer.init([[[0.0], [1.0]], [[0.0], [2.0]]])
    >>> enc = layer.encode(state, np.array([[0.9, 0.1]]))
    >>> enc.indices, layer.decode(state, enc.indices)
    (array([[1, 0]]), array([[1., 0.]]))
    """
    )
    layout = "product"


class ResidualDiVeQ(_Composite):
    __doc__ = (
        """Residual DiVeQ layer: ``M`` codebooks ``(M, K, D)``, one per residual stage.

    ``x_0 = z``, stage ``m`` quantises ``x_m`` and ``x_{m+1} = x_m - q_m``; the composite point
    is ``sum_m q_m`` and one DiVeQ step moves ``z`` towards it.
"""
        + _COMPOSITE_PARAMETERS.format(dim_note="", part="stage", kind="residual")
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from diveq.reference import ResidualDiVeQ
    >>> layer = ResidualDiVeQ(2, 2, 1, noise_std=0.0)
    >>> state = layer.init([[[0.0], [1.0]], [[0.0], [0.5]]])
    >>> out, state = layer.apply(state, np.array([[1.4]]), train=False)
    >>> out.values, out.indices, layer.decode(state, out.indices)
    (array([[1.5]]), array([[1, 1]]), array([[1.5]]))
    """
    )
    layout = "residual"
