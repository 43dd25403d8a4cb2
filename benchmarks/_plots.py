"""Plots of the sweep: time against K (fixed N) and against N (fixed K)."""

from __future__ import annotations

import argparse


def plot_sweep(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, axis, fixed, other in ((axes[0], "k", "n", args.n), (axes[1], "n", "k", args.k)):
        sel = [r for r in rows if r[fixed] == other]
        for case in sorted({str(r["case"]) for r in sel}):
            pts = sorted((int(r[axis]), float(r["seconds"])) for r in sel if r["case"] == case)
            ax.loglog([p[0] for p in pts], [p[1] * 1e3 for p in pts], marker="o", label=case)
        ax.set_xlabel(axis.upper())
        ax.set_ylabel("ms per forward + backward")
        ax.set_title(f"{fixed.upper()} = {other}, D = {args.d}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "sweep.png", dpi=120)
