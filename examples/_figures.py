"""Figures of the compression demo: training curves and reconstructions side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from _patches import to_image
from _train import Config, Run
from _vqvae import METHODS, VQVAE

__all__ = ["plot_curves", "plot_reconstructions"]


def plot_curves(runs: dict[str, list[Run]], cfg: Config, out: Path) -> list[Path]:
    """Test PSNR and test-set codebook usage over training (mean over seeds, band = min..max)."""
    paths = []
    for attr, ylabel, name in (
        ("psnr_curve", "test PSNR (dB), hard inference", "psnr_curves.png"),
        ("usage_curve", "codebook usage on the test set (%)", "codebook_usage.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for method, group in runs.items():
            steps = group[0].steps
            ys = np.array([getattr(r, attr) for r in group])
            ax.plot(steps, ys.mean(axis=0), label=METHODS[method])
            if len(group) > 1:
                ax.fill_between(steps, ys.min(axis=0), ys.max(axis=0), alpha=0.2)
        if "sf_diveq" in runs:
            ax.axvline(cfg.skip_iters, color="grey", ls=":", lw=1)
            ax.annotate(
                " SF-DiVeQ warm-up ends",
                (cfg.skip_iters, 0.02),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                color="grey",
            )
        if attr == "psnr_curve":
            finite = np.concatenate([np.ravel([r.psnr_curve for r in g]) for g in runs.values()])
            finite = finite[np.isfinite(finite)]
            if finite.size:  # the un-initialised SF codebook during warm-up sits far below
                ax.set_ylim(max(finite.min(), np.percentile(finite, 10) - 2), finite.max() + 0.5)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{cfg.bits} bits per 32x32 patch, K = {cfg.num_codes}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


@torch.no_grad()
def plot_reconstructions(models: dict[str, VQVAE], test: torch.Tensor, out: Path) -> list[Path]:
    """Originals (top row) and each method's hard-inference reconstruction of 8 test patches,
    from the flattest to the most textured (evenly spaced ranks of the pixel std)."""
    order = torch.argsort(test.flatten(1).std(dim=1))
    pick = order[torch.linspace(0, len(test) - 1, 8).round().long()]
    x = test[pick]
    rows = [("original", to_image(x))]
    for method, model in models.items():
        model.eval()
        recon, _, _ = model(x)
        label = METHODS[method] + ("\n(polyline)" if method == "sf_diveq" else "")
        rows.append((label, to_image(recon)))
    fig, axes = plt.subplots(len(rows), len(pick), figsize=(1.3 * len(pick), 1.35 * len(rows)))
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("test patches (held-out photos) and reconstructions", fontsize=10)
    fig.tight_layout()
    path = out / "reconstructions.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
