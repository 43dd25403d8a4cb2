"""JAX layers under ``jax.shard_map`` on 2 forced host CPU devices (issue 7, item 4).

``XLA_FLAGS=--xla_force_host_platform_device_count=2`` only works before jax is imported, and
the test session has imported it already, so the sharded run happens in a child process that
prints a JSON report; the assertions are made here.

Each device gets a different half of a global batch and the same key. Every device carries its
own copy of the state (stacked on the device axis), so any drift between devices would show.
Over 7 jitted train steps (two DiVeQ replacement windows of 3 calls; the SF warm-up with
``skip_iters = 3``, ``avg_iters = 2`` and quantised calls after it) we check:

* the devices' codebooks, call and usage counters are bit-identical after every step (the
  warm-up buffers hold each device's own rows by design and are compared as gathered);
* the usage counters are the counts of the global batch's indices, summed since the last reset;
* the state equals that of the same layer without ``axis_name`` run on one device with the
  global batch (counts ``psum``-ed, warm-up rows gathered call-major then device), and the
  indices are the single-device ones; with ``noise_std = 0`` the values are identical too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

STEPS, ROWS, K = 7, 6, 16  # ROWS rows per device, 2 devices

CHILD = f"""
import json
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import diveq.backends.jax as dq

jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 2, jax.devices()
mesh = jax.make_mesh((2,), ("d",))
STEPS, ROWS, K = {STEPS}, {ROWS}, {K}
data = jnp.asarray(np.random.default_rng(0).standard_normal((STEPS, 2 * ROWS, 4)) * 0.3)
keys = jax.random.split(jax.random.key(1), STEPS)
SHARD, REPL = NamedSharding(mesh, P("d")), NamedSharding(mesh, P())


def layers(noise, axis, rows):
    return {{
        "DiVeQ": dq.DiVeQ(
            num_codes=K, dim=4, replacement_iters=3, noise_std=noise, axis_name=axis
        ),
        "SFDiVeQ": dq.SFDiVeQ(
            K, 4, skip_iters=3, avg_iters=2, rows_per_call=rows, noise_std=noise, axis_name=axis
        ),
    }}


def sharded(layer):
    def body(state, z, key):
        out, new = layer.apply(jax.tree.map(lambda x: x[0], state), z, key=key)
        return jax.tree.map(lambda x: x[None], new), out.values, out.indices

    return jax.jit(
        jax.shard_map(
            body,
            mesh=mesh,
            in_specs=(P("d"), P("d"), P()),
            out_specs=(P("d"), P("d"), P("d")),
            check_vma=False,
        )
    )


result = {{}}
for noise in (1e-3, 0.0):
    single = layers(noise, None, 2 * ROWS)
    for name, layer in layers(noise, "d", ROWS).items():
        init = layer.init(jax.random.key(0))
        state = jax.device_put(jax.tree.map(lambda x: jnp.stack([x, x]), init), SHARD)
        step = sharded(layer)
        one = single[name]
        s1 = one.init(jax.random.key(0))
        step1 = jax.jit(lambda s, z, k, one=one: one.apply(s, z, key=k))
        fields = [f for f, x in zip(state._fields, state) if x is not None]  # no buffer: None
        rec = {{"fields": fields, "state": [], "single": [], "indices": []}}
        for t in range(STEPS):
            state, values, idx = step(
                state, jax.device_put(data[t], SHARD), jax.device_put(keys[t], REPL)
            )
            o1, s1 = step1(s1, data[t], keys[t])
            leaves = [np.asarray(x) for x in state if x is not None]
            for f, x in zip(fields, leaves):
                if f.startswith("buffer"):  # as gathered: per slot dev 0, dev 1
                    slots = [x[i].reshape(2, ROWS, *x.shape[2:]) for i in range(2)]
                    gathered = np.stack(slots, 1).reshape((-1, *x.shape[2:]))
                    leaves[fields.index(f)] = np.stack([gathered, gathered])
            rec["state"].append([[x[0].tolist(), x[1].tolist()] for x in leaves])
            rec["single"].append(
                {{
                    "state": [np.asarray(y).tolist() for y in s1 if y is not None],
                    "indices": np.asarray(o1.indices).tolist(),
                    "values": np.asarray(o1.values).tolist(),
                    "sharded_values": np.asarray(values).tolist(),
                }}
            )
            rec["indices"].append(np.asarray(idx).tolist())
        rec["init_codebook"] = np.asarray(init.codebook).tolist()
        result[f"{{name}}-{{noise}}"] = rec
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def report():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_counters(indices, resets):
    """``hits`` / ``calls_used`` after each call from the global batch's indices."""
    hits, used, out = np.zeros(K, int), np.zeros(K, int), []
    for t, idx in enumerate(indices):
        counts = np.bincount(np.asarray(idx)[np.asarray(idx) >= 0], minlength=K)
        hits, used = hits + counts, used + (counts > 0)
        if t + 1 in resets:
            hits, used = np.zeros(K, int), np.zeros(K, int)
        out.append((hits, used))
    return out


# DiVeQ: replacement (and counter reset) at calls 3 and 6; SF: the warm-up init at call 2
# resets the counters and the calls before skip_iters = 3 are not quantised.
RESETS = {"DiVeQ": {3, 6}, "SFDiVeQ": {2}}


@pytest.mark.parametrize("noise", ["0.001", "0.0"])
@pytest.mark.parametrize("name", ["DiVeQ", "SFDiVeQ"])
def test_devices_stay_identical_and_match_one_device(report, name, noise):
    rec = report[f"{name}-{noise}"]
    fields = rec["fields"]
    expected = _expected_counters(rec["indices"], RESETS[name])
    for t in range(STEPS):
        state, single = rec["state"][t], rec["single"][t]
        for f, (dev0, dev1), want in zip(fields, state, single["state"], strict=True):
            if not f.startswith("buffer"):
                np.testing.assert_array_equal(dev0, dev1, err_msg=f"{f} differs, call {t + 1}")
            np.testing.assert_array_equal(dev0, want, err_msg=f"{f} vs one device, call {t + 1}")
        np.testing.assert_array_equal(rec["indices"][t], single["indices"])
        hits, used = expected[t]
        np.testing.assert_array_equal(state[fields.index("hits")][0], hits)
        np.testing.assert_array_equal(state[fields.index("calls_used")][0], used)
        assert state[fields.index("calls")][0] == t + 1
        if noise == "0.0":  # deterministic: the values are the single-device ones too
            np.testing.assert_array_equal(single["sharded_values"], single["values"])
    codebook = np.asarray(rec["state"][-1][fields.index("codebook")][0])
    assert not np.array_equal(codebook, rec["init_codebook"])  # replacement / warm-up ran
    if name == "SFDiVeQ":  # not quantised during the warm-up, quantised after it
        assert all(i == -1 for i in rec["indices"][0])
        assert all(i >= 0 for i in rec["indices"][-1])
