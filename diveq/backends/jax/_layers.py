"""The JAX layers: frozen configs whose ``init`` / ``apply`` are pure functions of a state.

Each layer is a hashable frozen dataclass (safe to close over in ``jax.jit``). Training::

    import jax, jax.numpy as jnp, optax
    import diveq.backends.jax as dq

    layer = dq.DiVeQ(num_codes=512, dim=64)
    params, rest = dq.split_params(layer.init(jax.random.key(0)))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, rest, opt_state, z, key):
        def loss_fn(params):
            out, new_state = layer.apply(dq.merge_params(params, rest), z, key=key)
            return jnp.mean((out.values - z) ** 2), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params, rest = dq.split_params(new_state)  # replacement / warm-up may have moved rows
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

Only the codebook(s) get gradients and optimiser updates; the other leaves (counters, warm-up
buffer) are advanced by ``apply`` itself. Apply the updates to the codebook of the *new*
state, which already holds this call's replacements or warm-up initialisation.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import ClassVar

from diveq.backends.jax._config import Common, Replacement, Warmup
from diveq.backends.jax._layer import Layer

__all__ = ["DiVeQ", "ProductDiVeQ", "ResidualDiVeQ", "SFDiVeQ"]

_NOTES = """
    Masked (``mask`` False) and non-finite rows pass through unchanged, get index ``-1`` and
    never reach the counters, the replacement, the warm-up buffer or the codebook gradient.
    ``train=False`` uses the hard inference of :mod:`diveq.reference` and returns the state
    unchanged. With ``axis_name`` (inside ``shard_map`` / ``pmap``) the per-call usage counts
    are summed over the devices and the warm-up rows gathered, so every device keeps the same
    state; pass the same ``key`` on every device (the noise is decorrelated per device).
"""

_DIVEQ_EXAMPLES = """
    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import diveq.backends.jax as dq
    >>> vq = dq.DiVeQ(num_codes=16, dim=4)
    >>> state = vq.init(jax.random.key(0))
    >>> z = jax.random.normal(jax.random.key(1), (8, 4))
    >>> out, state = vq.apply(state, z, key=jax.random.key(2))
    >>> out.values.shape, out.indices.shape, int(state.calls)
    ((8, 4), (8,), 1)

    A jitted step: the gradient goes to the codebook, the new state to the next step.

    >>> @jax.jit
    ... def step(state, z, key):
    ...     codebook, rest = dq.split_params(state)
    ...     def loss(codebook):
    ...         out, new = vq.apply(dq.merge_params(codebook, rest), z, key=key)
    ...         return jnp.mean((out.values - z) ** 2), new
    ...     grad, new = jax.grad(loss, has_aux=True)(codebook)
    ...     codebook, rest = dq.split_params(new)  # replacement may have moved rows
    ...     return dq.merge_params(codebook - 0.1 * grad, rest)
    >>> state = step(state, z, jax.random.key(3))
    >>> int(state.calls)
    2

    ``train=False`` is the hard inference and returns the state unchanged:

    >>> hard, same = vq.apply(state, z, train=False)
    >>> same is state
    True
"""

_SF_EXAMPLES = """
    Examples
    --------
    >>> import jax
    >>> import diveq.backends.jax as dq
    >>> vq = dq.SFDiVeQ(num_codes=8, dim=2, skip_iters=0)  # no warm-up
    >>> z = jax.random.normal(jax.random.key(1), (5, 2))
    >>> out, state = vq.apply(vq.init(jax.random.key(0)), z, key=jax.random.key(2))
    >>> out.weights.shape, out.indices.shape
    ((5,), (5,))
"""

_COMPOSITE_EXAMPLES = """
    Examples
    --------
    >>> import jax
    >>> import diveq.backends.jax as dq
    >>> vq = dq.{name}(num_codebooks=2, num_codes=8, dim=4)
    >>> z = jax.random.normal(jax.random.key(1), (5, 4))
    >>> out, state = vq.apply(vq.init(jax.random.key(0)), z, key=jax.random.key(2))
    >>> out.values.shape, out.indices.shape, state.codebooks.shape
    ((5, 4), (5, 2), {books})
"""


@dataclass(frozen=True)
class DiVeQ(Layer, Replacement, Common):
    """DiVeQ layer with one codebook.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise (0: deterministic variant).
    replacement_iters : int or None, default 100
        Length of the dead-code replacement window in train-mode calls (None: off).
    discard_threshold : float, default 0.01
        A code is dead if used in fewer than this share of the window's calls.
    perturb_eps : float, default 1e-9
        Scale of the perturbation of replaced codes.
    feature_axis : int, default -1
        Axis of ``z`` holding the features (e.g. 1 for images ``(B, C, H, W)``).
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init: ``U(-1/K, 1/K)`` (the VQ-VAE convention) or ``U[0, 1/K)`` (the official
        package and the paper's compression code), elementwise.
    axis_name : hashable, optional
        Device axis over which usage counts are summed (data-parallel training).
    dtype : dtype, default float32
        dtype of the codebook.

    Notes
    -----
    State: :class:`State`. Only the codebook is trained; ``apply`` advances the rest.
    """

    __doc__ = (__doc__ or "") + _NOTES + _DIVEQ_EXAMPLES

    space_filling: ClassVar[bool] = False
    num_codes: int
    dim: int


@dataclass(frozen=True)
class SFDiVeQ(Layer, Warmup, Common):
    """Space-filling DiVeQ layer with one codebook and the SF warm-up.

    Parameters
    ----------
    num_codes : int
        ``K >= 2``, number of codewords (polyline vertices).
    dim : int
        ``D``, feature size.
    noise_std : float, default 1e-3
        Standard deviation of the directional noise.
    skip_iters : int, default 1000
        Train-mode calls ``1 .. skip_iters - 1`` are not quantised (values = ``z``, indices
        ``-1``); SF quantisation starts at call ``skip_iters`` (0 or 1: at once).
    avg_iters : int, default 50
        The rows of the last ``avg_iters`` warm-up calls initialise the codebook at call
        ``skip_iters - 1`` (chunk means, see :func:`diveq.reference.warmup_codebook`).
    rows_per_call : int, optional
        Maximum rows (latent vectors) per call on one device; required when
        ``skip_iters > 1``, since the warm-up buffer has the static size
        ``avg_iters * rows_per_call``. Calls with fewer rows are padded.
    feature_axis, codebook_init, axis_name, dtype
        As for :class:`DiVeQ`.

    Notes
    -----
    If fewer than ``K`` valid rows were collected, the init raises a ``ValueError`` when the
    call is not traced; under ``jax.jit`` it cannot raise and keeps the current codebook.
    After the init, :meth:`release_warmup` drops the (then zeroed) buffer.
    """

    __doc__ = (__doc__ or "") + _NOTES + _SF_EXAMPLES

    space_filling: ClassVar[bool] = True
    num_codes: int
    dim: int


@dataclass(frozen=True)
class _Composite(Layer, Replacement, Warmup, Common):
    num_codebooks: int
    num_codes: int
    dim: int
    _: KW_ONLY
    space_filling: bool = False


_COMPOSITE = """Parameters
    ----------
    num_codebooks : int
        ``M``, number of codebooks.
    num_codes : int
        ``K``, codewords per codebook (``>= 2`` when space-filling).
    dim : int
        ``D``, feature size of ``z``.
    space_filling : bool, default False
        Use the SF estimator per codebook. During the SF warm-up
        (``skip_iters``, ``avg_iters``, ``rows_per_call`` as for :class:`SFDiVeQ`) the layer
        runs composite DiVeQ with replacement, then initialises every codebook from its own
        block / stage latents.
    noise_std, replacement_iters, discard_threshold, perturb_eps, feature_axis, codebook_init
        As for :class:`DiVeQ`.
    axis_name, dtype
        As for :class:`DiVeQ`.

    Notes
    -----
    State: :class:`CompositeState`; indices have a trailing axis of length ``M``; the
    perplexity is the mean over the codebooks.
"""


@dataclass(frozen=True)
class ProductDiVeQ(_Composite):
    __doc__ = (
        "Product DiVeQ layer: block ``m`` of ``D / M`` features uses codebook ``m``.\n\n    "
        + _COMPOSITE
        + _NOTES
        + _COMPOSITE_EXAMPLES.format(name="ProductDiVeQ", books="(2, 8, 2)")
    )
    layout: ClassVar[str] = "product"


@dataclass(frozen=True)
class ResidualDiVeQ(_Composite):
    __doc__ = (
        "Residual DiVeQ layer: stage ``m`` quantises what stages ``0`` to ``m-1`` left.\n\n    "
        + _COMPOSITE
        + _NOTES
        + _COMPOSITE_EXAMPLES.format(name="ResidualDiVeQ", books="(2, 8, 4)")
    )
    layout: ClassVar[str] = "residual"
