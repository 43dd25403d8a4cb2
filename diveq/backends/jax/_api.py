"""The jax backend's public functions, one name each (typed by the generated ``_api.pyi``)."""

from diveq.backends.jax._functions import FUNCTIONS

globals().update(FUNCTIONS)
