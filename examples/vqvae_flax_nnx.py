"""
A VQ-VAE in Flax NNX
====================

A small VQ-VAE in Flax NNX: 8x8 grayscale patches of scikit-image's bundled photos, coded as
4 latent vectors of 4 features, each quantised to one of 64 codewords (24 bits per patch).

The quantiser is :mod:`diveq.backends.flax.nnx`'s ``DiVeQ`` or ``SFDiVeQ``, an ``nnx.Module``
like the encoder and the decoder: its codebook is an ``nnx.Param`` trained by the same
``nnx.Optimizer`` (no auxiliary loss), its counters and warm-up rows are ``VQState`` variables
it updates itself, and dead-code replacement (DiVeQ) or the SF warm-up init (SF-DiVeQ) rewrite
codebook rows in place. The training step below is plain NNX. Whole photos are held out for
testing. Everything is offline: the photos ship with scikit-image.

    python examples/vqvae_flax_nnx.py            # 3000 steps per method
    python examples/vqvae_flax_nnx.py --quick    # 60 steps (the test suite)
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import skimage.color
import skimage.data
from flax import nnx

import diveq.backends.flax.nnx as dqn

TRAIN_PHOTOS = ("camera", "moon", "coins", "brick", "grass", "gravel", "astronaut", "rocket")
TEST_PHOTOS = ("clock", "coffee")
PATCH, LATENTS, DIM, CODES, BATCH = 8, 4, 4, 64, 256


def patches(names: tuple[str, ...], stride: int) -> np.ndarray:
    """All ``PATCH x PATCH`` windows of the named photos (grayscale), flattened, in
    ``[-0.5, 0.5]``: ``(N, PATCH * PATCH)`` float32."""
    out = []
    for name in names:
        photo = getattr(skimage.data, name)()
        gray = skimage.color.rgb2gray(photo) if photo.ndim == 3 else photo / 255.0
        windows = np.lib.stride_tricks.sliding_window_view(gray, (PATCH, PATCH))
        out.append(windows[::stride, ::stride].reshape(-1, PATCH * PATCH))
    return (np.concatenate(out) - 0.5).astype(np.float32)


class VQVAE(nnx.Module):
    def __init__(self, method: str, *, rngs: nnx.Rngs, steps: int):
        width = LATENTS * DIM
        self.encoder = nnx.Sequential(
            nnx.Linear(PATCH * PATCH, 128, rngs=rngs), nnx.relu, nnx.Linear(128, width, rngs=rngs)
        )
        if method == "SF-DiVeQ":
            warmup = max(steps // 6, 10)
            self.vq = dqn.SFDiVeQ(
                CODES,
                DIM,
                rngs=rngs,
                skip_iters=warmup,
                avg_iters=min(20, warmup // 2),
                rows_per_call=BATCH * LATENTS,
            )
        else:
            self.vq = dqn.DiVeQ(CODES, DIM, rngs=rngs, replacement_iters=min(100, steps // 3))
        self.decoder = nnx.Sequential(
            nnx.Linear(width, 128, rngs=rngs), nnx.relu, nnx.Linear(128, PATCH * PATCH, rngs=rngs)
        )

    def __call__(self, x: jax.Array):
        h = self.encoder(x).reshape(x.shape[0], LATENTS, DIM)
        out = self.vq(h)
        return self.decoder(out.values.reshape(x.shape[0], -1)), out


@nnx.jit
def train_step(model: VQVAE, optimizer: nnx.Optimizer, x: jax.Array) -> jax.Array:
    def loss_fn(model):
        y, _ = model(x)
        return jnp.mean((y - x) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def evaluate(model: VQVAE, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    y, out = model(x)
    return jnp.mean((y - x) ** 2), out.indices


def run(method: str, train: np.ndarray, test: np.ndarray, steps: int, seed: int) -> dict:
    model = VQVAE(method, rngs=nnx.Rngs(seed), steps=steps)
    optimizer = nnx.Optimizer(model, optax.adam(2e-3), wrt=nnx.Param)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, optimizer, jnp.asarray(train[rng.integers(0, len(train), BATCH)]))
    jax.block_until_ready(loss)
    seconds = time.perf_counter() - start
    model.eval()  # hard quantisation, no state change
    mse, indices = evaluate(model, jnp.asarray(test))
    counts = np.bincount(np.asarray(indices).ravel(), minlength=CODES)
    p = counts / counts.sum()
    return {
        "mse": float(mse),
        "psnr": float(10 * np.log10(1.0 / float(mse))),
        "perplexity": float(np.exp(-np.sum(p * np.log(p + 1e-10)))),
        "usage": 100.0 * float(np.mean(counts > 0)),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="60 steps per method (a few seconds)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    steps = 60 if args.quick else args.steps
    train = patches(TRAIN_PHOTOS, stride=8 if args.quick else 2)
    test = patches(TEST_PHOTOS, stride=8)
    bits = LATENTS * int(np.log2(CODES))
    print(f"{len(train)} training patches, {len(test)} test patches, {steps} steps")
    print(
        f"{'method':10}{'bits/patch':>12}{'test MSE':>10}{'PSNR dB':>9}"
        f"{'perplexity':>12}{'usage %':>9}{'seconds':>9}"
    )
    for method in ("DiVeQ", "SF-DiVeQ"):
        r = run(method, train, test, steps, args.seed)
        print(
            f"{method:10}{bits:>12}{r['mse']:>10.5f}{r['psnr']:>9.2f}"
            f"{r['perplexity']:>12.1f}{r['usage']:>9.1f}{r['seconds']:>9.1f}"
        )


if __name__ == "__main__":
    main()
