"""Paired-seed studies behind two choices of the migration guide (not a test; figures vary).

    python benchmarks/port_study.py init --seeds 8 --steps 300
    python benchmarks/port_study.py port --seeds 2 --steps 300 --windows 100,10,3,1

``init``: DiVeQ with ``codebook_init="symmetric"`` (U(-1/K, 1/K)) against ``"positive"``
(U[0, 1/K)), same seeds, on the demo's VQ-VAE (examples/compress.py): test PSNR and codes used.
``port``: vector-quantize-pytorch's DiVeQ (``directional_reparam=True``, variance 5e-3,
``threshold_ema_dead_code=2``) against this library's DiVeQ ported with ``noise_std =
sqrt(5e-3)``, its init scale and several ``replacement_iters``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import _train
from _patches import load_patches
from _train import Config, evaluate

import diveq.backends.torch as dq


class Native(nn.Module):
    """A diveq layer on ``(B, D, H, W)`` latents, in the demo's quantizer interface."""

    def __init__(self, layer: dq.DiVeQ, init_bound: float | None = None) -> None:
        super().__init__()
        self.layer = layer
        if init_bound is not None:
            with torch.no_grad():
                layer.codebook.uniform_(-init_bound, init_bound)

    def forward(self, z, generator=None):
        out = self.layer(z, generator=generator)
        return out.values, out.indices, z.new_zeros(())


class VQTorch(nn.Module):
    """vector-quantize-pytorch's DiVeQ in the demo's quantizer interface."""

    def __init__(self, num_codes: int, dim: int) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.vq = VectorQuantize(
            dim=dim,
            codebook_size=num_codes,
            accept_image_fmap=True,
            directional_reparam=True,
            directional_reparam_variance=5e-3,
            threshold_ema_dead_code=2,
        )

    def forward(self, z, generator=None):
        values, indices, loss = self.vq(z)
        return values, indices, loss


def _variants(study: str, cfg: Config, windows: list[int]) -> dict:
    k, d = cfg.num_codes, cfg.dim
    if study == "init":
        return {
            init: (lambda init=init: Native(dq.DiVeQ(k, d, feature_axis=1, codebook_init=init)))
            for init in ("symmetric", "positive")
        }
    std, bound = math.sqrt(5e-3), math.sqrt(6 / (k * d))
    out = {"vector-quantize-pytorch": lambda: VQTorch(k, d)}
    for r in windows:
        out[f"diveq replacement_iters={r}"] = lambda r=r: Native(
            dq.DiVeQ(k, d, feature_axis=1, noise_std=std, replacement_iters=r), bound
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("study", choices=["init", "port"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--windows", default="100,10", help="port: replacement_iters to try")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = dataclasses.replace(Config(), steps=args.steps, eval_every=args.steps)
    data = load_patches(per_photo=1500)
    test = data.test_float()
    variants = _variants(args.study, cfg, [int(r) for r in args.windows.split(",")])
    psnr = {name: [] for name in variants}
    usage = {name: [] for name in variants}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        for name, make in variants.items():
            _train.make_quantizer = lambda *a, make=make, **kw: make()
            run = _train.train("diveq", cfg, data, seed, progress=False)
            m = evaluate(run.model, test, cfg.num_codes)
            psnr[name].append(m.psnr)
            usage[name].append(m.usage)
            print(f"seed {seed} {name:<32} PSNR {m.psnr:6.2f} dB  codes used {m.usage:5.1f} %")
    base = next(iter(variants))
    print(f"\n{args.steps} steps, seeds {list(seeds)}; paired differences against {base}")
    for name in variants:
        diff = np.array(psnr[name]) - np.array(psnr[base])
        spread = diff.std(ddof=1) if len(diff) > 1 else 0.0
        t = diff.mean() / (spread / math.sqrt(len(diff))) if spread > 0 else math.nan
        print(
            f"{name:<32} PSNR {np.mean(psnr[name]):6.2f} ± {np.std(psnr[name]):.2f} dB, "
            f"codes used {np.mean(usage[name]):5.1f} %, paired diff {diff.mean():+.2f} dB "
            f"(t = {t:+.1f})"
        )


if __name__ == "__main__":
    main()
