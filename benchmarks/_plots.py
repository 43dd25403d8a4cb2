"""Plot of the sweep: each case's time as a multiple of its floor, against N K, per D."""

from __future__ import annotations

import argparse


def plot_sweep(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({int(r["d"]) for r in rows})  # type: ignore[call-overload]
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    cases = sorted({str(r["case"]) for r in rows if "x_floor" in r})
    markers = "osD^v<>phX*"  # colours repeat after ten cases: the marker tells them apart
    for ax, d in zip(axes[0], dims, strict=True):
        for i, case in enumerate(cases):
            pts = sorted(
                (int(r["n"]) * int(r["k"]), float(r["x_floor"]))  # type: ignore[call-overload, arg-type]
                for r in rows
                if r["case"] == case and int(r["d"]) == d and "x_floor" in r  # type: ignore[call-overload]
            )
            if pts:
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                ax.loglog(xs, ys, marker=markers[i % len(markers)], ls="", label=case)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("N K")
        ax.set_ylabel("time / floor (median per round)")
        ax.set_title(f"D = {d}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.out / "sweep.png", dpi=120)
