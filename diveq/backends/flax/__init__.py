"""Flax modules of diveq: :mod:`diveq.backends.flax.nnx` and :mod:`diveq.backends.flax.linen`.

Both are thin over the JAX layers of :mod:`diveq.backends.jax` (the maths and the training
state machine are theirs); they add only where Flax keeps parameters, state and keys. Install
with ``pip install "diveq[flax]"``. Importing this package imports neither submodule.
"""
