"""Equinox modules: the diveq layers as ``eqx.nn.StatefulLayer``\\ s, plus :func:`write_back`.

Each module holds a JAX layer of :mod:`diveq.backends.jax` (``module.layer``, a static field),
its codebook(s) as an array field (the only trainable leaf) and an ``eqx.nn.StateIndex``:
the counters, the ``replaced`` mask, the warm-up rows and the rewritten codebook live in the
``eqx.nn.State``, never in the model, so ``eqx.filter_grad`` / ``eqx.is_inexact_array``
filters see nothing to train but the codebook. Install with ``pip install "diveq[equinox]"``.

The codebook rows that dead-code replacement or the SF warm-up init rewrite wait in the state
until :func:`write_back` folds them into the model, once per training step, before the
optimiser update::

    @eqx.filter_jit
    def step(model, state, opt_state, x, key):
        def loss_fn(model, state):
            y, state = model(x, state, key=key)
            return jnp.mean((y - x) ** 2), state

        grad_fn = eqx.filter_value_and_grad(loss_fn, has_aux=True)
        (loss, state), grads = grad_fn(model, state)
        model, state = dqe.write_back(model, state)
        updates, opt_state = optimizer.update(
            grads, opt_state, eqx.filter(model, eqx.is_inexact_array)
        )
        return eqx.apply_updates(model, updates), state, opt_state, loss

A call that finds rows still pending raises (``ValueError`` eagerly; under JIT a runtime error
with the same message), so a forgotten write-back is never silent. ``inference=True`` (or
``eqx.nn.inference_mode(model)``) is the hard inference and changes no state.

The SF warm-up buffer stays in the state after the warm-up init (zeroed; the plain JAX and
Flax layers can drop it with ``release_warmup``): an ``eqx.nn.State`` entry keeps the
structure and shapes it was created with, so dropping it would mean rebuilding the model, its
state and the optimiser state. Its size is ``avg_iters * rows_per_call * dim`` numbers.

:class:`GumbelVQ` has no state but its codebook field, so it is a plain ``eqx.Module`` called
without ``state`` (``out = layer(z, key=key, tau=tau)``, as ``eqx.nn.Dropout``);
:class:`EMAVQ` keeps its whole state, codebook included, in the ``eqx.nn.State``.
"""

from __future__ import annotations

from diveq.backends.equinox._ema import EMAVQ
from diveq.backends.equinox._gumbel import GumbelVQ
from diveq.backends.equinox._layers import (
    DiVeQ,
    ProductDiVeQ,
    ResidualDiVeQ,
    SFDiVeQ,
    write_back,
)

__all__ = ["EMAVQ", "DiVeQ", "GumbelVQ", "ProductDiVeQ", "ResidualDiVeQ", "SFDiVeQ", "write_back"]
