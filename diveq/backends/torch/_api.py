"""The torch backend's public functions, one name each (typed by the generated ``_api.pyi``)."""

from diveq.backends.torch._functions import FUNCTIONS

globals().update(FUNCTIONS)
