"""Train one VQ-VAE per (method, seed) on the same budget and evaluate it on the held-out photos."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from _patches import PatchData, to_image
from _vqvae import METHODS, VQVAE, make_quantizer
from skimage.metrics import structural_similarity
from tqdm import tqdm

import diveq.backends.torch as dq

__all__ = ["Config", "Metrics", "Run", "evaluate", "train"]


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
    warmup_share: float = 0.15
    replacement: bool = True
    noise_std: float = 1e-3

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
    model: VQVAE
    seconds: float
    steps: list[int] = field(default_factory=list)
    psnr_curve: list[float] = field(default_factory=list)
    usage_curve: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: VQVAE, test: torch.Tensor, num_codes: int, *, ssim: bool = False) -> Metrics:
    """Hard-inference metrics on the test patches (PSNR and SSIM: means over patches)."""
    was_training = model.training
    model.eval()
    recon, indices, _ = model(test)
    model.train(was_training)
    recon = recon.clamp(-0.5, 0.5)
    mse = ((recon - test) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    psnr = float((10 * torch.log10(1.0 / mse)).mean())
    s = float("nan")
    if ssim:
        a, b = to_image(test), to_image(recon)
        s = float(
            np.mean(
                [
                    structural_similarity(x, y, channel_axis=-1, data_range=1.0)
                    for x, y in zip(a, b, strict=True)
                ]
            )
        )
    bins = num_codes - 1 if _polyline(model) else num_codes
    usage = 100.0 * indices[indices >= 0].unique().numel() / bins
    ppl = float(dq.perplexity(indices, num_codes))
    return Metrics(psnr=psnr, ssim=s, usage=usage, perplexity=ppl)


def _polyline(model: VQVAE) -> bool:
    q = model.quantizer
    return isinstance(getattr(q, "layer", None), dq.SFDiVeQ) and not q.vertices


def train(method: str, cfg: Config, data: PatchData, seed: int, *, progress: bool = True) -> Run:
    """Train ``method`` for ``cfg.steps`` Adam steps (cosine decay of the learning rate to a
    tenth); the seed fixes the initialisation, the batches and the quantizer draws."""
    torch.manual_seed(seed)
    quantizer = make_quantizer(
        method,
        cfg.num_codes,
        cfg.dim,
        replacement=cfg.replacement,
        skip_iters=cfg.skip_iters,
        avg_iters=cfg.avg_iters,
        noise_std=cfg.noise_std,
        steps=cfg.steps,
    )
    model = VQVAE(quantizer, cfg.dim, cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=0.1 * cfg.lr)
    batches = torch.Generator().manual_seed(seed)
    draws = torch.Generator().manual_seed(seed + 10_000)
    test = data.test_float()
    run = Run(method, seed, model, 0.0)
    bar = tqdm(
        range(1, cfg.steps + 1),
        desc=f"{METHODS[method]:>14} seed {seed}",
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
            m = evaluate(model, test, cfg.num_codes)
            run.steps.append(step)
            run.psnr_curve.append(m.psnr)
            run.usage_curve.append(m.usage)
            bar.set_postfix(
                loss=f"{float(loss.detach()):.4f}", psnr=f"{m.psnr:.2f}", used=f"{m.usage:.0f}%"
            )
    run.seconds = time.perf_counter() - start
    bar.close()
    return run
