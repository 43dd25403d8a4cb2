"""``codebook_init``: ``"symmetric"`` draws U(-1/K, 1/K) (the default), ``"positive"`` U[0, 1/K)
(the official package's draw), in every implementation of the layers."""

from __future__ import annotations

import numpy as np
import pytest

import diveq.reference as ref

K, D = 16, 8
LAYERS = {  # the positional arguments of each layer class
    "DiVeQ": (K, D),
    "SFDiVeQ": (K, D),  # built with skip_iters=0: no warm-up buffer to size
    "ProductDiVeQ": (2, K, D),
    "ResidualDiVeQ": (2, K, D),
}


def _options(name: str, init: str) -> dict:
    return {"codebook_init": init, **({"skip_iters": 0} if name == "SFDiVeQ" else {})}


def _check(books: np.ndarray, init: str) -> None:
    low = -1 / K if init == "symmetric" else 0.0
    assert books.min() >= low and books.max() < 1 / K
    assert (books.min() < 0) == (init == "symmetric")  # 128+ draws: both signs when symmetric


def _torch(name: str, args: tuple, init: str) -> np.ndarray:
    torch = pytest.importorskip("torch")
    import diveq.backends.torch as dq

    torch.manual_seed(0)
    layer = getattr(dq, name)(*args, **_options(name, init))
    return layer._param().detach().numpy()


def _jax(name: str, args: tuple, init: str) -> np.ndarray:
    jax = pytest.importorskip("jax")
    import diveq.backends.jax as dq

    state = getattr(dq, name)(*args, **_options(name, init)).init(jax.random.key(0))
    return np.asarray(state[0])


def _reference(name: str, args: tuple, init: str) -> np.ndarray:
    layer = getattr(ref, name)(*args, **_options(name, init))
    state = layer.init(rng=np.random.default_rng(0))
    return np.asarray(state.codebooks)


@pytest.mark.parametrize("init", ["symmetric", "positive"])
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("make", [_torch, _jax, _reference], ids=["torch", "jax", "reference"])
def test_codebook_init_draws(make, name, init):
    _check(make(name, LAYERS[name], init), init)


def test_the_default_is_symmetric():
    assert ref.DiVeQ(K, D).spec.codebook_init == "symmetric"


def test_an_unknown_init_names_the_choices():
    with pytest.raises(ValueError, match=r"codebook_init.*symmetric.*positive"):
        ref.DiVeQ(K, D, codebook_init="uniform")
