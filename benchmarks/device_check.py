"""One prepared GPU check: CUDA conformance, sync-free layer steps, peak memory at scale, and the
fused search kernels (``fused_check.py``: their conformance on CUDA and one timing table).

Run on a machine with a GPU (``python benchmarks/device_check.py``); prints everything it
measures. Not part of the test suite: CI has no GPU.
"""

from __future__ import annotations

import time

import torch


def conformance() -> None:
    import diveq.backends.torch as dq
    from diveq.testing import check_backend
    from diveq.testing._adapters import TorchAdapter

    torch.backends.cuda.matmul.allow_tf32 = False
    report = check_backend(dq, adapter=TorchAdapter(dq, device="cuda"), max_examples=10)
    print("torch cuda conformance:", report.table().splitlines()[0], flush=True)
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_default_matmul_precision", "float32")
        print("jax devices:", jax.devices(), flush=True)
        for jit in (False, True):
            report = check_backend("diveq.backends.jax", jit=jit, max_examples=5)
            print(f"jax conformance jit={jit}:", report.table().splitlines()[0], flush=True)
    except Exception as err:  # report and go on: the torch checks matter most here
        print("jax conformance FAILED:", type(err).__name__, str(err)[:2000], flush=True)


def layer_steps() -> None:
    import diveq.backends.torch as dq

    layers = {
        "DiVeQ": dq.DiVeQ(512, 64, replacement_iters=3),
        "SFDiVeQ": dq.SFDiVeQ(512, 64, skip_iters=3, avg_iters=2),
        "ProductDiVeQ-SF": dq.ProductDiVeQ(
            4, 256, 64, space_filling=True, skip_iters=3, avg_iters=2
        ),
        "ResidualDiVeQ": dq.ResidualDiVeQ(3, 256, 64, replacement_iters=3),
    }
    for name, layer in layers.items():
        layer = layer.cuda().train()
        encoder = torch.nn.Linear(64, 64).cuda()
        opt = torch.optim.Adam([*layer.parameters(), *encoder.parameters()], lr=1e-3)
        x = torch.randn(4096, 64, device="cuda")
        for step in range(8):
            # the SF warm-up init counts rows once on the host (documented); all else is sync-free
            mode = "error" if step != 1 else "default"
            torch.cuda.set_sync_debug_mode(mode)
            out = layer(encoder(x))
            out.values.square().mean().backward()
            opt.step()
            opt.zero_grad()
            torch.cuda.set_sync_debug_mode("default")
        finite = bool(torch.isfinite(layer.state_dict()[next(iter(layer.state_dict()))]).all())
        print(f"layer {name}: 8 cuda train steps ok, finite={finite}", flush=True)


def at_scale() -> None:
    import diveq.backends.torch as dq

    n, k, d = 2**19, 2**14, 64
    gen = torch.Generator(device="cuda").manual_seed(0)
    z = torch.randn(n, d, device="cuda", generator=gen).requires_grad_(True)
    c = (torch.randn(k, d, device="cuda", generator=gen) * 0.5).requires_grad_(True)
    g = torch.randn(n, d, device="cuda", generator=gen)
    for name in ("diveq", "sf_diveq"):
        fn = getattr(dq, name)
        for _ in range(2):
            fn(z, c, generator=gen).values.backward(g)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        for _ in range(5):
            fn(z, c, generator=gen).values.backward(g)
        torch.cuda.synchronize()
        sec = (time.perf_counter() - start) / 5
        peak = (torch.cuda.max_memory_allocated() - base) / 2**30
        print(
            f"{name} N=2^19 K=2^14 D=64 cuda: {sec * 1e3:.1f} ms fwd+bwd, "
            f"peak extra {peak:.2f} GiB (distance matrix would be 32 GiB)",
            flush=True,
        )


if __name__ == "__main__":
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    import sys

    from fused_check import main as fused  # the opt-in fused search kernels

    parts = {
        "conformance": conformance,
        "layer_steps": layer_steps,
        "at_scale": at_scale,
        "fused": fused,
    }
    for part in [parts[name] for name in (sys.argv[1:] or parts)]:
        start = time.perf_counter()
        try:
            part()
        except Exception as err:
            print(f"{part.__name__} FAILED: {type(err).__name__}: {str(err)[:3000]}", flush=True)
        print(f"[{part.__name__}: {time.perf_counter() - start:.1f} s]", flush=True)
