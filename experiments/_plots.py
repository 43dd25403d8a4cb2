"""The study's figures. Each is written even without rows (it then says so), so the docs
page that shows them always builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments._methods import METHODS
from experiments._plan import NOISES
from experiments._stats import paired, summary
from experiments._tables import (
    NOISY,
    OTHER_INITS,
    Rows,
    defaults,
    groups,
    label,
    reference_cell,
    seeds_of,
)

__all__ = ["FIGURES"]

DODGE = 1.015  # log-axis offset factor between methods, so error bars do not overlap


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no results yet for {what}", ha="center", va="center",
            transform=ax.transAxes, color="grey")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def psnr_vs_budget(rows: Rows, out: Path) -> Path:
    """Test PSNR (mean, 95 % CI) against the training budget, per data set, at K = 256."""
    codes = max((r["num_codes"] for r in rows), default=0)
    sel = [r for r in defaults(rows) if r["num_codes"] == codes]
    datasets = sorted({r["dataset"] for r in sel}) or ["photos"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.2), squeeze=False)
    for ax, data in zip(axes[0], datasets, strict=True):
        cell = [r for r in sel if r["dataset"] == data]
        if not cell:
            _empty(ax, "PSNR against budget")
            continue
        for i, runs in enumerate(groups(cell, ("method", "noise_std")).values()):
            by_steps = sorted(groups(runs, ("steps",)).items())
            xs = [s * DODGE**i for (s,), _ in by_steps]  # side by side, not on top
            stats_ = [summary([r["psnr"] for r in g]) for _, g in by_steps]
            ax.errorbar(xs, [s.mean for s in stats_], yerr=[np.nan_to_num(s.half) for s in stats_],
                        marker="o", capsize=3, label=label(runs[0]))  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("training steps")
        ax.set_ylabel("test PSNR (dB), mean and 95 % CI")
        ax.set_title(f"{data}, K = {cell[0]['num_codes']} ({cell[0]['bits']} bits per item)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out / "psnr_vs_budget.png")


def usage_over_training(rows: Rows, out: Path) -> Path:
    """Test-set codebook usage over training (photos, K = 256, demo budget); for SF methods
    also by nearest codeword (dashed), the official code's measure."""
    sel = defaults(reference_cell(rows))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if not sel:
        _empty(ax, "usage over training")
    for (_, _), runs in groups(sel, ("method", "noise_std")).items():
        steps = runs[0]["curves"]["step"]
        line = ax.plot(steps, np.mean([r["curves"]["usage"] for r in runs], axis=0),
                       label=label(runs[0]))[0]  # fmt: skip
        if runs[0]["evals"].get("step"):
            ax.plot(runs[0]["evals"]["step"],
                    np.mean([r["evals"]["vertex_usage"] for r in runs], axis=0), ls="--",
                    color=line.get_color(), label=label(runs[0], vertex=True))  # fmt: skip
    ax.set_xlabel("training step")
    ax.set_ylabel("codes (SF polyline: segments) used on the test set, %")
    ax.grid(alpha=0.3)
    if sel:
        ax.legend(fontsize=7)
    return _save(fig, out / "usage_over_training.png")


def noise_curve(rows: Rows, out: Path) -> Path:
    """PSNR against noise_std (0 drawn at the left edge), with the measured ||c_k - z||."""
    sel = [r for r in defaults(reference_cell(rows), noise=False) if r["method"] in NOISY]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if not sel:
        _empty(ax, "the noise scale")
        return _save(fig, out / "noise_scale.png")
    floor = 1e-6  # where noise_std = 0 is drawn
    for i, ((method,), runs) in enumerate(groups(sel, ("method",)).items()):
        by_noise = sorted(groups(runs, ("noise_std",)).items())
        xs = [max(n, floor) * DODGE ** (4 * i) for (n,), _ in by_noise]
        st = [summary([r["psnr"] for r in g]) for _, g in by_noise]
        line = ax.errorbar(xs, [s.mean for s in st], yerr=[np.nan_to_num(s.half) for s in st],
                           marker="o", capsize=3, label=METHODS[method].label)  # fmt: skip
        dist = np.median([r["diag"]["dist"][-1] for r in runs if r["diag"].get("dist")])
        ax.axvline(dist, ls=":", color=line[0].get_color())
    ax.set_xscale("log")
    ticks = [floor, *(n for n in NOISES if n > 0)]
    ax.set_xticks(ticks, ["0"] + [f"{t:g}" for t in ticks[1:]])
    ax.set_xlabel("noise_std (0 drawn at the left); dotted: median ||c_k - z|| at the end")
    ax.set_ylabel("test PSNR (dB), mean and 95 % CI")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "noise_scale.png")


def init_comparison(rows: Rows, out: Path) -> Path:
    """Paired PSNR difference to the symmetric ``U(-1/K, 1/K)`` init, per method, of the
    positive ``U[0, 1/K)`` init and of the data init (``K`` latents of the first batch)."""
    sel = defaults(reference_cell(rows), init=False)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    names: list[str] = []
    diffs: dict[str, list[tuple[int, Any]]] = {init: [] for init in OTHER_INITS}
    for (_, _), runs in groups(sel, ("method", "noise_std")).items():
        sym = [r for r in runs if r["codebook_init"] == "symmetric"]
        found = False
        for init, found_diffs in diffs.items():
            d = paired(seeds_of([r for r in runs if r["codebook_init"] == init], "psnr"),
                       seeds_of(sym, "psnr"))  # fmt: skip
            if d.n >= 2:
                found_diffs.append((len(names), d))
                found = True
        if found:
            names.append(label(runs[0]))
    if not names:
        _empty(ax, "the codebook init (pairs of seeds needed)")
        return _save(fig, out / "init_comparison.png")
    for (init, found_diffs), shift in zip(diffs.items(), (-0.12, 0.12), strict=True):
        if found_diffs:
            y = np.array([i for i, _ in found_diffs]) + shift
            ax.errorbar([d.mean for _, d in found_diffs], y, xerr=[d.half for _, d in found_diffs],
                        fmt="o" if init == "positive" else "s", capsize=3,
                        label=f"{init} - symmetric")  # fmt: skip
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("PSNR difference to the symmetric init (dB), paired mean and 95 % CI")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out / "init_comparison.png")


def diagnostics(rows: Rows, out: Path) -> Path:
    """Cosine of each method's gradient at the encoder output to the STE gradient, and the
    ratio of their norms, over training (photos, K = 256, demo budget; mean over seeds)."""
    sel = defaults(reference_cell(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    if not sel:
        _empty(a, "gradient diagnostics")
        _empty(b, "gradient diagnostics")
    for (_, _), runs in groups(sel, ("method", "noise_std")).items():
        steps = runs[0]["diag"]["step"]
        cos = np.nanmean([r["diag"]["cos_ste"] for r in runs], axis=0)
        ratio = np.nanmean([np.divide(r["diag"]["grad_norm"], r["diag"]["ste_norm"])
                            for r in runs], axis=0)  # fmt: skip
        a.plot(steps, cos, label=label(runs[0]))
        b.plot(steps, ratio, label=label(runs[0]))
    a.set_ylabel("cos(gradient at z, STE gradient)")
    b.set_ylabel("|gradient at z| / |STE gradient|")
    b.set_yscale("log")
    for ax in (a, b):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    if sel:
        a.legend(fontsize=7)
    return _save(fig, out / "diagnostics.png")


FIGURES = (psnr_vs_budget, usage_over_training, noise_curve, init_comparison, diagnostics)
