"""The bad-input matrix of the Reliability page (docs/reliability.rst), case by case.

The per-function cases (shapes, dtypes, draws, ``N = 0``, duplicate codewords, magnitudes,
non-finite rows) run for every function on every backend in ``test_conformance.py``
(``check_errors``, ``check_edge_values``, ``check_empty``); this file adds the usage helpers,
devices, and the layers of both backends. Every case id below appears on the docs page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reliability.rst"

CASE_IDS = [
    "float-indices",
    "num-codes-zero",
    "num-codes-float",
    "indices-shape",
    "device-mismatch",
    "jax-devices",
    "layer-feature-size",
    "layer-dtype",
    "layer-mask",
    "layer-device",
    "layer-empty",
    "layer-all-masked",
    "layer-bad-rows",
    "autocast-bf16",  # tests/test_torch_faults.py::test_autocast_*
]


def test_every_case_is_documented():
    text = DOCS.read_text()
    missing = [case for case in CASE_IDS if f"``{case}``" not in text]
    assert not missing, f"docs/reliability.rst lacks {missing}"


# -- usage helpers and commitment loss on every backend ---------------------------------------


def test_usage_helpers_reject_bad_arguments(backend):
    """Cases float-indices, num-codes-zero, num-codes-float and indices-shape."""
    mod, a = backend.module, backend.asarray
    good = a(np.array([0, 1, -1]))
    for fn in (mod.code_usage, mod.perplexity):
        with pytest.raises(TypeError, match="`indices` must have an integer dtype"):
            fn(a(np.zeros(3)), 4)
        with pytest.raises(ValueError, match="`num_codes` must be >= 1"):
            fn(good, 0)
        with pytest.raises(TypeError, match="`num_codes` must be"):
            fn(good, 2.0)
    z, book = a(np.zeros((3, 2))), a(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"`indices` must have shape.*\(3,\).*\(2,\)"):
        backend.module.commitment_loss(z, book, a(np.zeros(2, dtype=np.int64)))
    with pytest.raises(TypeError, match="`indices` must have an integer dtype"):
        backend.module.commitment_loss(z, book, a(np.zeros(3)))


# -- devices (torch; JAX reports mismatched committed devices itself) --------------------------

torch = pytest.importorskip("torch")


def test_torch_functions_name_mismatched_devices():
    """Case device-mismatch: a ValueError naming both devices, before any kernel runs."""
    import diveq.backends.torch as dq

    z, meta = torch.zeros(3, 4), torch.zeros(5, 4, device="meta")
    with pytest.raises(ValueError, match=r"`codebook` is on device meta but `z` is on device cpu"):
        dq.diveq(z, meta)
    with pytest.raises(ValueError, match=r"`codebooks` is on device meta"):
        dq.product_diveq(z, torch.zeros(2, 5, 2, device="meta"))
    with pytest.raises(ValueError, match=r"`noise` is on device meta"):
        dq.diveq(z, torch.zeros(5, 4), noise=torch.zeros(3, 4, device="meta"))
    with pytest.raises(ValueError, match=r"`dither` is on device meta"):
        dq.sf_diveq(z, torch.zeros(5, 4), dither=torch.zeros(4, device="meta"))
    with pytest.raises(ValueError, match=r"`indices` is on device meta"):
        dq.commitment_loss(z, torch.zeros(5, 4), torch.zeros(3, dtype=torch.int64, device="meta"))


def test_jax_names_arrays_committed_to_different_devices():
    """Case jax-devices: JAX's own dispatch error names both arguments and device ids."""
    pytest.importorskip("jax")
    code = (
        "import jax, jax.numpy as jnp, diveq.backends.jax as dq\n"
        "a, b = jax.devices()\n"
        "z = jax.device_put(jnp.ones((3, 4)), a)\n"
        "c = jax.device_put(jnp.ones((5, 4)), b)\n"
        "try:\n    dq.quantize(z, c)\nexcept ValueError as err:\n    print(err)\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "incompatible devices" in done.stdout
    assert "codebook" in done.stdout and "device ids [1]" in done.stdout


# -- layers on both backends --------------------------------------------------------------------

KINDS = ["DiVeQ", "SFDiVeQ", "ProductDiVeQ", "ResidualDiVeQ"]


class TorchLayers:
    name = "torch"

    def __init__(self) -> None:
        import diveq.backends.torch as dq

        self.dq = dq

    def make(self, kind: str):
        dq = self.dq
        args = (2, 4, 4) if kind in ("ProductDiVeQ", "ResidualDiVeQ") else (4, 4)
        layer = getattr(dq, kind)(*args, **({"skip_iters": 0} if kind == "SFDiVeQ" else {}))
        return layer

    def call(self, layer, z, mask=None, train=True, dtype="float32"):
        layer.train(train)
        zt = torch.as_tensor(np.asarray(z)).to(getattr(torch, dtype))
        mt = None if mask is None else torch.as_tensor(np.asarray(mask))
        out = layer(zt, mask=mt)
        return out, _torch_state(layer)


def _torch_state(layer) -> dict[str, np.ndarray]:
    items = layer.state_dict().items()
    return {k: v.detach().float().numpy().copy() for k, v in items if torch.is_tensor(v)}


class JaxLayers:
    name = "jax"

    def __init__(self) -> None:
        import jax

        import diveq.backends.jax as dq

        self.dq, self.jax = dq, jax
        self.states: dict[int, object] = {}

    def make(self, kind: str):
        dq = self.dq
        args = (2, 4, 4) if kind in ("ProductDiVeQ", "ResidualDiVeQ") else (4, 4)
        layer = getattr(dq, kind)(*args, **({"skip_iters": 0} if kind == "SFDiVeQ" else {}))
        self.states[id(layer)] = layer.init(self.jax.random.key(0))
        return layer

    def call(self, layer, z, mask=None, train=True, dtype="float32"):
        jnp = self.jax.numpy
        state = self.states[id(layer)]
        zj = jnp.asarray(np.asarray(z), dtype=dtype)
        mj = None if mask is None else jnp.asarray(np.asarray(mask))
        key = self.jax.random.key(1) if train else None
        out, state = layer.apply(state, zj, key=key, mask=mj, train=train)
        self.states[id(layer)] = state
        leaves = {f: np.asarray(v, dtype=np.float64) for f, v in state._asdict().items()}
        return out, leaves


def _layers(name: str):
    if name == "torch":
        return TorchLayers()
    pytest.importorskip("jax")
    return JaxLayers()


def _np(x) -> np.ndarray:
    """A layer output as float64 NumPy (torch outputs may require grad)."""
    x = x.detach() if torch.is_tensor(x) else x
    return np.asarray(x, dtype=np.float64)


@pytest.fixture(params=["torch", "jax"])
def layers(request):
    return _layers(request.param)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_bad_calls_raise_and_change_nothing(layers, kind):
    """Cases layer-feature-size, layer-dtype and layer-mask: each raises a clear error, and the
    state afterwards equals the state before."""
    layer = layers.make(kind)
    z = np.random.default_rng(0).standard_normal((6, 4))
    _, before = layers.call(layer, z, train=False)
    with pytest.raises(ValueError, match=r"feature size mismatch|dim = 4"):
        layers.call(layer, z[:, :3])
    for dtype in ("int32", "bool", "complex64"):
        with pytest.raises(TypeError, match="`z`"):
            layers.call(layer, z, dtype=dtype)
    with pytest.raises(ValueError, match="`mask`"):
        layers.call(layer, z, mask=np.ones(5, dtype=bool))
    with pytest.raises(TypeError, match="`mask`"):
        layers.call(layer, z, mask=np.ones(6, dtype=np.float32))
    _, after = layers.call(layer, z, train=False)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_torch_layer_on_another_device_than_its_input():
    """Case layer-device: the layer's codebook and ``z`` on different devices."""
    layer = TorchLayers().make("DiVeQ")
    with pytest.raises(ValueError, match="is on device cpu but `z` is on device meta"):
        layer(torch.zeros(2, 4, device="meta"))


@pytest.mark.parametrize("kind", KINDS)
def test_layer_empty_and_all_masked_calls_count_nothing(layers, kind):
    """Cases layer-empty and layer-all-masked: empty outputs / ``z`` passed through with index
    -1, and no usage counted (the call counter still advances in train mode)."""
    layer = layers.make(kind)
    z = np.random.default_rng(1).standard_normal((6, 4))
    _, before = layers.call(layer, z, train=False)
    out, after = layers.call(layer, np.zeros((0, 4)))
    assert tuple(out.values.shape) == (0, 4)
    assert int(_np(out.indices).size) == 0
    out, after = layers.call(layer, z, mask=np.zeros(6, dtype=bool))
    np.testing.assert_array_equal(_np(out.values), z.astype(np.float32))
    assert np.all(np.asarray(out.indices) == -1)
    assert float(_np(out.perplexity)) == 1.0
    for key in ("hits", "calls_used"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    books = "codebook" if "codebook" in before else "codebooks"
    np.testing.assert_array_equal(after[books], before[books])


@pytest.mark.parametrize("kind", KINDS)
def test_layer_non_finite_rows_get_minus_one_and_are_not_counted(layers, kind):
    """Case layer-bad-rows: NaN/inf rows pass through, get index -1, count nothing, and the
    other rows are quantised exactly as without them."""
    layer = layers.make(kind)
    z = np.random.default_rng(2).standard_normal((6, 4))
    bad = z.copy()
    bad[1, 2], bad[4, 0] = np.nan, -np.inf
    clean, _ = layers.call(layer, z, train=False)
    out, state = layers.call(layer, bad, train=False)
    idx, want = np.asarray(out.indices), np.asarray(clean.indices)
    assert np.all(idx[[1, 4]] == -1)
    np.testing.assert_array_equal(idx[[0, 2, 3, 5]], want[[0, 2, 3, 5]])
    out, state = layers.call(layer, bad)  # train mode
    idx = np.asarray(out.indices)
    assert np.all(idx[[1, 4]] == -1)
    assert int(state["hits"].sum()) == 4 * (2 if "Product" in kind or "Residual" in kind else 1)
    values = _np(out.values)
    assert np.all(np.isfinite(values[[0, 2, 3, 5]]))
    assert np.isnan(values[1, 2]) and np.isneginf(values[4, 0])  # passed through unchanged
