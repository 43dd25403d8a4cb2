"""Train one VQ-VAE per (method, seed) on the same budget and evaluate it on the held-out photos."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from _patches import to_image
from _vqvae import METHODS, VQVAE, make_quantizer
from skimage.metrics import structural_similarity
from torch import nn
from tqdm import tqdm

import diveq.backends.torch as dq

__all__ = ["Config", "Data", "Metrics", "Run", "evaluate", "train"]


class Data(Protocol):
    """What :func:`train` needs of a data set (e.g. :class:`_patches.PatchData`)."""

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor: ...

    def test_float(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class Config:
    """One training budget, shared by every method."""

    steps: int = 1500
    batch: int = 48
    lr: float = 1e-3
    num_codes: int = 256
    dim: int = 32
    hidden: int = 64
    eval_every: int = 100
    warmup_share: float = 0.05  # the study (docs: Evidence) found 5 % better than 15 % and 30 %
    replacement: bool = True
    noise_std: float = 1e-3
    codebook_init: str = "symmetric"

    @property
    def latents(self) -> int:
        return 16  # 4x4 latents per 32x32 patch

    @property
    def bits(self) -> int:
        return self.latents * math.ceil(math.log2(self.num_codes))

    @property
    def skip_iters(self) -> int:
        """SF-DiVeQ warm-up: the first ``warmup_share`` of the steps are not quantised."""
        return max(2, round(self.warmup_share * self.steps))

    @property
    def avg_iters(self) -> int:
        """The last ~5% of the warm-up steps (at least 2) give the rows for the SF init."""
        return max(2, self.skip_iters // 20)


@dataclass
class Metrics:
    psnr: float
    ssim: float
    usage: float  # % of codes (SF polyline decode: segments) used on the test set
    perplexity: float


@dataclass
class Run:
    method: str
    seed: int
    model: nn.Module
    seconds: float
    steps: list[int] = field(default_factory=list)
    psnr_curve: list[float] = field(default_factory=list)
    usage_curve: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, test: torch.Tensor, *, ssim: bool = False) -> Metrics:
    """Hard-inference metrics on the test set (PSNR and SSIM: means over test items).

    Images ``(N, C, H, W)`` or signals ``(N, C, L)`` in ``[-0.5, 0.5]``. With several
    codebooks, usage and perplexity are means over the codebooks.
    """
    was_training = model.training
    model.eval()
    recon, indices, _ = model(test)
    model.train(was_training)
    recon = recon.clamp(-0.5, 0.5)
    mse = ((recon - test) ** 2).flatten(1).mean(dim=1).clamp_min(1e-10)
    psnr = float((10 * torch.log10(1.0 / mse)).mean())
    s = float("nan")
    if ssim:
        a, b = to_image(test), to_image(recon)
        axis = -1 if a.ndim == 4 else None
        s = float(
            np.mean(
                [
                    structural_similarity(x, y, channel_axis=axis, data_range=1.0)
                    for x, y in zip(a, b, strict=True)
                ]
            )
        )
    books = model.quantizer.books
    num_codes = books.shape[1]
    codes = indices.reshape(-1, books.shape[0])
    bins = num_codes - 1 if _polyline(model) else num_codes
    usage = float(np.mean([100.0 * c[c >= 0].unique().numel() / bins for c in codes.unbind(dim=1)]))
    ppl = float(np.mean([float(dq.perplexity(c, num_codes)) for c in codes.unbind(dim=1)]))
    return Metrics(psnr=psnr, ssim=s, usage=usage, perplexity=ppl)


def _polyline(model: nn.Module) -> bool:
    q = model.quantizer
    layer = getattr(q, "layer", None)
    return bool(getattr(layer, "space_filling", False)) and not q.vertices


def train(
    method: str,
    cfg: Config,
    data: Data,
    seed: int,
    *,
    progress: bool = True,
    build: Callable[[], nn.Module] | None = None,
    on_eval: Callable[[int, nn.Module], None] | None = None,
) -> Run:
    """Train ``method`` for ``cfg.steps`` Adam steps (cosine decay of the learning rate to a
    tenth); the seed fixes the initialisation, the batches and the quantizer draws.

    ``build`` makes the model (after seeding; default: the demo's :class:`VQVAE` with
    ``make_quantizer(method, ...)``); ``on_eval(step, model)`` runs after each evaluation.
    """
    torch.manual_seed(seed)
    model = build() if build is not None else _demo_model(method, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=0.1 * cfg.lr)
    batches = torch.Generator().manual_seed(seed)
    draws = torch.Generator().manual_seed(seed + 10_000)
    test = data.test_float()
    run = Run(method, seed, model, 0.0)
    bar = tqdm(
        range(1, cfg.steps + 1),
        desc=f"{METHODS.get(method, method):>14} seed {seed}",
        disable=not progress,
        mininterval=1.0,
        leave=False,
    )
    start = time.perf_counter()
    for step in bar:
        x = data.batch(cfg.batch, batches)
        recon, _, aux = model(x, draws)
        loss = torch.mean((recon - x) ** 2) + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            m = evaluate(model, test)
            if on_eval is not None:
                on_eval(step, model)
            run.steps.append(step)
            run.psnr_curve.append(m.psnr)
            run.usage_curve.append(m.usage)
            bar.set_postfix(
                loss=f"{float(loss.detach()):.4f}", psnr=f"{m.psnr:.2f}", used=f"{m.usage:.0f}%"
            )
    run.seconds = time.perf_counter() - start
    bar.close()
    return run


def _demo_model(method: str, cfg: Config) -> VQVAE:
    quantizer = make_quantizer(
        method,
        cfg.num_codes,
        cfg.dim,
        replacement=cfg.replacement,
        skip_iters=cfg.skip_iters,
        avg_iters=cfg.avg_iters,
        noise_std=cfg.noise_std,
        codebook_init=cfg.codebook_init,
        steps=cfg.steps,
    )
    return VQVAE(quantizer, cfg.dim, cfg.hidden)
