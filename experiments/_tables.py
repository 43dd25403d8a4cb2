"""The study's tables from its rows: what has run, the main comparison, noise scale, codebook
init, SF-DiVeQ init and the diagnostics. Each table is a list of rows (a header first)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from experiments._methods import GUMBEL_VARIANTS, METHODS
from experiments._plan import PARTS, plan
from experiments._stats import paired, summary
from experiments._store import METRICS

__all__ = ["NOISY", "Rows", "TABLES", "defaults", "groups", "label", "reference_cell", "seeds_of"]

NOISY = ("diveq", "sf_diveq")

Rows = list[dict[str, Any]]
Table = list[list[str]]

NUMERIC = ("seed", "steps", "num_codes", "bits", "batch")
FLOATS = ("noise_std", "warmup_share", "lr", *(m for m in METRICS if m != "bits"))


def typed(rows: Iterable[dict[str, Any]]) -> Rows:
    """CSV rows with numbers as numbers."""
    out = []
    for row in rows:
        r = dict(row)
        for k in NUMERIC:
            r[k] = int(r[k])
        for k in FLOATS:
            r[k] = float(r[k])
        r["quick"] = str(r["quick"]) == "True"
        out.append(r)
    return out


def label(row: dict[str, Any], vertex: bool = False) -> str:
    """Method name as the tables print it (``det.``: ``noise_std = 0``)."""
    name = METHODS[row["method"]].label
    if METHODS[row["method"]].noise and row["noise_std"] == 0:
        name += " det."
    if METHODS[row["method"]].space_filling:
        name += " (codewords)" if vertex else " (polyline)"
    return name


def seeds_of(rows: Rows, metric: str) -> dict[int, float]:
    return {r["seed"]: r[metric] for r in rows}


def _select(rows: Rows, **where: Any) -> Rows:
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _cells(rows: Rows, prefix: str, digits: dict[str, int]) -> list[str]:
    return [summary([r[prefix + m] for r in rows]).cell(d) for m, d in digits.items()]


def groups(rows: Rows, keys: tuple[str, ...]) -> dict[tuple[Any, ...], Rows]:
    """``rows`` by the values of ``keys``, methods in registry order (default noise first)."""
    order = list(METHODS)
    found: dict[tuple[Any, ...], Rows] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (order.index(r["method"]), -r["noise_std"], r["seed"])):
        found[tuple(r[k] for k in keys)].append(r)
    return found


def defaults(
    rows: Rows, *, init: bool = True, sf: bool = True, noise: bool = True, variants: bool = False
) -> Rows:
    """The runs with the study's default codebook init, SF init and warm-up, and
    ``noise_std`` (1e-3, or 0 for the deterministic variants), without the tuning variants
    of a method; ``False`` lifts a condition (``variants=True`` keeps the variants)."""
    return [
        r
        for r in rows
        if (variants or METHODS[r["method"]].variant_of is None)
        and (not init or r["codebook_init"] == "symmetric")
        and (not sf or (r["sf_init"] in ("-", "average") and r["warmup_share"] in (0.0, 0.15)))
        and (not noise or r["noise_std"] in (0.0, 1e-3))
    ]


def reference_cell(rows: Rows) -> Rows:
    """The photos runs at the demo's budget and the larger codebook (the cell of the noise,
    init and SF-init parts): the fewest steps and the most codes among the photos rows."""
    photos = [r for r in rows if r["dataset"] == "photos"]
    if not photos:
        return []
    steps = min(r["steps"] for r in photos)
    codes = max(r["num_codes"] for r in photos)
    return [r for r in photos if r["steps"] == steps and r["num_codes"] == codes]


def status(rows: Rows, quick: bool = False) -> Table:
    """Per part: runs planned, runs with a result row, methods left out (not implemented)."""
    keys = {r["key"] for r in rows}
    table = [["part", "runs planned", "runs with results", "state", "left out"]]
    for part in PARTS:
        runs, missing = plan((part,), quick=quick)
        done = sum(c.key in keys for c in runs)
        state = "complete" if done == len(runs) else ("not run" if done == 0 else "partial")
        left = ", ".join(METHODS[m].label for m in missing) or "none"
        table.append([part, str(len(runs)), str(done), state, left])
    return table


def main_table(rows: Rows) -> Table:
    """Every method at equal bits: mean ± 95 % CI over seeds; paired difference to DiVeQ."""
    digits = {"psnr": 2, "ssim": 3, "usage": 1, "perplexity": 1}
    table = [["data", "K", "steps", "method", "bits", "n", "PSNR dB", "SSIM", "usage %",
              "perplexity", "PSNR - DiVeQ (paired)"]]  # fmt: skip
    base = defaults(rows)
    for (data, k, steps), cell in sorted(groups(base, ("dataset", "num_codes", "steps")).items()):
        ref = [r for r in cell if r["method"] == "diveq" and r["noise_std"] == 1e-3]
        for (method, noise), runs in groups(cell, ("method", "noise_std")).items():
            for vertex in (False, True) if METHODS[method].space_filling else (False,):
                prefix = "vertex_" if vertex else ""
                diff = paired(seeds_of(runs, prefix + "psnr"), seeds_of(ref, "psnr"))
                is_ref = method == "diveq" and noise == 1e-3
                # the polyline decode adds a position on the segment: more than these bits
                more = METHODS[method].space_filling and not vertex
                bits = f"> {runs[0]['bits']}" if more else str(runs[0]["bits"])
                table.append([data, str(k), str(steps), label(runs[0], vertex), bits,
                              str(len(runs)), *_cells(runs, prefix, digits),
                              "(reference)" if is_ref else diff.cell(2)])  # fmt: skip
    return table


def noise_table(rows: Rows) -> Table:
    """DiVeQ and SF-DiVeQ over ``noise_std`` against the measured ``||c_k - z||``."""
    table = [["method", "noise_std", "n", "PSNR dB", "usage %", "median ‖c_k - z‖ (end)",
              "noise_std / ‖c_k - z‖"]]  # fmt: skip
    sel = [r for r in defaults(reference_cell(rows), noise=False) if r["method"] in NOISY]
    for (method, noise), runs in sorted(groups(sel, ("method", "noise_std")).items()):
        dist = float(np.median([r["diag"]["dist"][-1] for r in runs if r["diag"].get("dist")]))
        ratio = f"{noise / dist:.2g}" if dist > 0 else "-"
        cells = _cells(runs, "", {"psnr": 2, "usage": 1})
        table.append([METHODS[method].label, f"{noise:g}", str(len(runs)), *cells, f"{dist:.3g}",
                      ratio])  # fmt: skip
    return table


#: The codebook inits the study compares with the default ``"symmetric"``.
OTHER_INITS = ("positive", "data")


def init_table(rows: Rows) -> Table:
    """``U[0, 1/K)`` ("positive") and the data init ("data": ``K`` latents of the first batch)
    against ``U(-1/K, 1/K)`` ("symmetric"), each paired by seed."""
    table = [["method", "PSNR symmetric", "n", "PSNR positive", "n", "positive - symmetric",
              "PSNR data", "n", "data - symmetric"]]  # fmt: skip
    sel = defaults(reference_cell(rows), init=False)
    for runs in groups(sel, ("method", "noise_std")).values():
        sym = _select(runs, codebook_init="symmetric")
        row = [label(runs[0]), summary([r["psnr"] for r in sym]).cell(2), str(len(sym))]
        for init in OTHER_INITS:
            other = _select(runs, codebook_init=init)
            d = paired(seeds_of(other, "psnr"), seeds_of(sym, "psnr"))
            row += [summary([r["psnr"] for r in other]).cell(2), str(len(other)), d.cell(2)]
        if len(sym) < len(runs):  # some other init was run for this method
            table.append(row)
    return table


def data_init_table(rows: Rows) -> Table:
    """DiVeQ with the data init in every cell where it ran, paired with DiVeQ at the default
    init and with the best other method at equal bits (highest mean PSNR at the default init;
    SF methods decoded at their codewords)."""
    table = [["data", "K", "steps", "DiVeQ symmetric", "DiVeQ data", "n", "data - symmetric",
              "best other method", "its PSNR", "DiVeQ data - best"]]  # fmt: skip
    dive = [r for r in rows if r["method"] == "diveq" and r["noise_std"] == 1e-3]
    base = defaults(rows)
    for (data, k, steps), cell in sorted(groups(dive, ("dataset", "num_codes", "steps")).items()):
        ours = _select(cell, codebook_init="data")
        if not ours:
            continue
        sym = _select(cell, codebook_init="symmetric")
        others = [r for r in base if (r["dataset"], r["num_codes"], r["steps"]) == (data, k, steps)
                  and r["method"] != "diveq"]  # fmt: skip
        candidates = []  # (mean PSNR at equal bits, runs, metric)
        for runs in groups(others, ("method", "noise_std")).values():
            metric = "vertex_psnr" if METHODS[runs[0]["method"]].space_filling else "psnr"
            candidates.append((summary([r[metric] for r in runs]).mean, runs, metric))
        _, best_runs, best_metric = max(candidates, key=lambda c: c[0], default=(0, [], "psnr"))
        best = label(best_runs[0], best_metric != "psnr") if best_runs else "-"
        d_sym = paired(seeds_of(ours, "psnr"), seeds_of(sym, "psnr"))
        d_best = paired(seeds_of(ours, "psnr"), seeds_of(best_runs, best_metric))
        table.append([data, str(k), str(steps), summary([r["psnr"] for r in sym]).cell(2),
                      summary([r["psnr"] for r in ours]).cell(2), str(len(ours)),
                      d_sym.cell(2), best, summary([r[best_metric] for r in best_runs]).cell(2),
                      d_best.cell(2)])  # fmt: skip
    return table


def sf_init_table(rows: Rows) -> Table:
    """SF-DiVeQ initialisations and warm-up lengths; usage by segments and by codewords."""
    table = [["init", "warm-up share", "n", "PSNR dB (polyline)", "PSNR dB (codewords)",
              "usage % (segments)", "usage % (codewords)", "PSNR - average, 0.15"]]  # fmt: skip
    sel = [
        r
        for r in defaults(reference_cell(rows), sf=False)
        if r["method"] == "sf_diveq" and r["noise_std"] == 1e-3
    ]
    ref = _select(sel, sf_init="average", warmup_share=0.15)
    for (init, share), runs in sorted(groups(sel, ("sf_init", "warmup_share")).items()):
        d = paired(seeds_of(runs, "psnr"), seeds_of(ref, "psnr"))
        is_ref = init == "average" and share == 0.15
        table.append([init, f"{share:g}", str(len(runs)),
                      *_cells(runs, "", {"psnr": 2}), *_cells(runs, "vertex_", {"psnr": 2}),
                      *_cells(runs, "", {"usage": 1}), *_cells(runs, "vertex_", {"usage": 1}),
                      "(reference)" if is_ref else d.cell(2)])  # fmt: skip
    return table


def gumbel_table(rows: Rows) -> Table:
    """Gumbel-softmax by start temperature (annealed to half of it) and KL weight, at the demo's
    budget and K = 256, paired with the main comparison's runs (``tau = 1``, no KL term)."""
    table = [["data", "start tau", "KL weight", "n", "PSNR dB", "usage %", "perplexity",
              "PSNR - main Gumbel (paired)", "PSNR - DiVeQ (paired)"]]  # fmt: skip
    photos = reference_cell(rows)
    cells = {"photos": photos}
    if photos:
        steps, codes = photos[0]["steps"], photos[0]["num_codes"]
        cells["signals"] = _select(rows, dataset="signals", steps=steps, num_codes=codes)
    for data, cell in cells.items():
        sel = [r for r in defaults(cell, variants=True)
               if "gumbel" in (r["method"], METHODS[r["method"]].variant_of)]  # fmt: skip
        ref = _select(sel, method="gumbel")
        dv = [r for r in defaults(cell) if r["method"] == "diveq" and r["noise_std"] == 1e-3]
        for (method,), runs in groups(sel, ("method",)).items():
            tau, kl = GUMBEL_VARIANTS.get(method, (1.0, 0.0))
            d = paired(seeds_of(runs, "psnr"), seeds_of(ref, "psnr"))
            to_diveq = paired(seeds_of(runs, "psnr"), seeds_of(dv, "psnr"))
            table.append([data, f"{tau:g}", f"{kl:g}", str(len(runs)),
                          *_cells(runs, "", {"psnr": 2, "usage": 1, "perplexity": 1}),
                          "(reference)" if method == "gumbel" else d.cell(2),
                          to_diveq.cell(2)])  # fmt: skip
    return table


def _late(run: dict[str, Any], key: str, reduce: Callable[[Any], float] = np.mean) -> float:
    """``reduce`` of a diagnostic over the second half of the run (NaN if absent)."""
    values = [v for v in run["diag"].get(key, [])[len(run["diag"].get(key, [])) // 2 :]
              if math.isfinite(v)]  # fmt: skip
    return float(reduce(values)) if values else math.nan


def _init_rows(run: dict[str, Any]) -> int:
    """Codeword rows an SF warm-up init rewrites (all of them): not replacements."""
    m = METHODS[run["method"]]
    if not m.space_filling or run["warmup_share"] == 0:
        return 0
    return m.books * (run["num_codes"] if m.books == 1 else math.isqrt(run["num_codes"]))


def diagnostics_table(rows: Rows) -> Table:
    """Mechanisms, photos at K = 256 and the demo budget, second half of training."""
    table = [["method", "n", "cos(grad, STE grad)", "‖grad‖ / ‖STE grad‖", "codewords replaced",
              "code spread / latent spread (end)", "‖c_k - z‖ (end)"]]  # fmt: skip
    sel = defaults(reference_cell(rows))
    for _, runs in groups(sel, ("method", "noise_std")).items():
        ratio = [_late(r, "grad_norm") / _late(r, "ste_norm") for r in runs]
        replaced = [sum(r["diag"]["replaced"]) - _init_rows(r) for r in runs]
        spread = [r["diag"]["code_spread"][-1] / r["diag"]["latent_spread"][-1] for r in runs]
        table.append([label(runs[0]), str(len(runs)),
                      summary([_late(r, "cos_ste") for r in runs]).cell(2),
                      summary(ratio).cell(2), summary(replaced).cell(0), summary(spread).cell(2),
                      summary([r["diag"]["dist"][-1] for r in runs]).cell(3)])  # fmt: skip
    return table


def train_usage_table(rows: Rows) -> Table:
    """Codebook usage as the paper measures it (per training call) beside the test-set usage,
    second half of training, for the runs that logged it (``train_usage``)."""
    table = [["data", "K", "steps", "method", "n", "training-call usage %", "test usage %",
              "test usage at codewords %"]]  # fmt: skip
    logged = [r for r in rows if r["diag"].get("train_usage")]
    keys = ("dataset", "num_codes", "steps", "method", "noise_std")
    for (data, k, steps, *_), runs in groups(defaults(logged), keys).items():
        table.append([data, str(k), str(steps), label(runs[0]), str(len(runs)),
                      summary([_late(r, "train_usage") for r in runs]).cell(1),
                      summary([r["usage"] for r in runs]).cell(1),
                      summary([r["vertex_usage"] for r in runs]).cell(1)])  # fmt: skip
    return table


TABLES: dict[str, Callable[[Rows], Table]] = {
    "main": main_table,
    "noise": noise_table,
    "init": init_table,
    "data_init": data_init_table,
    "sf_init": sf_init_table,
    "gumbel": gumbel_table,
    "diagnostics": diagnostics_table,
    "train_usage": train_usage_table,
}
