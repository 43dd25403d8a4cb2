"""What the study trains: its parts, each a list of runs (duplicates across parts train once).

- ``main``: every method at equal bits, 5 seeds; photos at K = 256 for the demo's budget
  (1500 steps) and a 4x longer one (6000), and at K = 16 (1500 steps); deterministic DiVeQ
  and SF-DiVeQ (``noise_std = 0``) as their own rows.
- ``signals``: the same methods on the second data set and architecture (1-D windows, MLP
  codec), K = 256 and 16, both budgets.
- ``noise``: DiVeQ and SF-DiVeQ over ``noise_std`` in {0, 1e-5, ..., 1e-1}, 3 seeds.
- ``init``: every method with ``codebook_init="positive"`` (``U[0, 1/K)``), 5 seeds, paired
  with ``main``'s ``"symmetric"`` (``U(-1/K, 1/K)``) runs.
- ``sf_init``: SF-DiVeQ with the k-means init, with random init and no warm-up, and with
  warm-ups of 5 % and 30 % of the steps (``main`` has 15 %), 5 seeds.
- ``data_init``: STE, the rotation trick, NSVQ and DiVeQ with their codebook set to ``K``
  latents of the first training batch (:mod:`experiments._datainit`), photos, K = 256, the
  demo's budget, 5 seeds, paired with ``main``: does a data-dependent init remove DiVeQ's slow
  start? And DiVeQ so initialised in four more cells of ``main`` and ``signals``.
- ``gumbel_tau``: Gumbel-softmax with other temperatures (start ``tau`` in
  :data:`~experiments._methods.GUMBEL_TAUS`; ``main`` has 1) and with the Gumbel-softmax VAE's
  KL-to-uniform prior term (weights :data:`~experiments._methods.GUMBEL_KLS`; ``main`` has
  none), both data sets, K = 256, the demo's budget, 3 seeds: is the baseline's collapse a
  matter of tuning?

``quick`` keeps the structure with one seed, 12 steps, small data and a subset of the grid.
"""

from __future__ import annotations

from collections.abc import Iterator

from experiments._config import RunConfig, run_config
from experiments._methods import GUMBEL_VARIANTS, METHODS, available

__all__ = ["NOISES", "PARTS", "plan", "main_variants"]

NOISES = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
BUDGET, LONG = 1500, 6000
QUICK = 12  # steps of a --quick run
SEEDS = tuple(range(5))
PARTS = ("main", "signals", "noise", "init", "sf_init", "gumbel_tau", "data_init")
#: The methods of the ``data_init`` part (one codebook, trained by their gradient).
DATA_INIT = ("ste", "rotation", "nsvq", "diveq")
#: The other cells (data, K, steps) where the ``data_init`` part runs DiVeQ.
DATA_INIT_CELLS = (("photos", 16, BUDGET), ("photos", 256, LONG), ("signals", 256, BUDGET),
                   ("signals", 16, BUDGET))  # fmt: skip


def main_variants() -> Iterator[tuple[str, float]]:
    """``(method, noise_std)`` of the main comparison: every method, plus the deterministic
    (``noise_std = 0``) variants of DiVeQ and SF-DiVeQ."""
    for name in (m for m in METHODS if METHODS[m].variant_of is None):
        yield name, 1e-3
        if name in ("diveq", "sf_diveq"):
            yield name, 0.0


def _part(name: str, quick: bool) -> Iterator[RunConfig]:
    seeds = (0,) if quick else SEEDS
    steps = (QUICK,) if quick else (BUDGET,)
    both = (QUICK, 2 * QUICK) if quick else (BUDGET, LONG)
    k = 16 if quick else 256
    if name == "main":
        grid = [(k, s) for s in both] + ([] if quick else [(16, BUDGET)])
        for (codes, n), (method, noise), seed in (
            (g, v, s) for g in grid for v in main_variants() for s in seeds
        ):
            if quick and n != steps[0] and method not in ("ste", "diveq"):
                continue  # the quick plan's longer budget: two methods
            yield run_config("photos", method, seed, n, codes, noise_std=noise, quick=quick)
    elif name == "signals":
        grid = [(16, QUICK)] if quick else [(c, n) for c in (256, 16) for n in both]
        variants = [("ste", 0.0), ("diveq", 1e-3)] if quick else list(main_variants())
        for (codes, n), (method, noise), seed in (
            (g, v, s) for g in grid for v in variants for s in seeds
        ):
            yield run_config("signals", method, seed, n, codes, noise_std=noise, quick=quick)
    elif name == "noise":
        noises = (0.0, 1e-1) if quick else NOISES
        for method in ("diveq", "sf_diveq"):
            for noise in noises:
                for seed in seeds[:3]:
                    yield run_config(
                        "photos", method, seed, steps[0], k, noise_std=noise, quick=quick
                    )
    elif name == "init":
        names = ("diveq",) if quick else tuple(dict.fromkeys(m for m, _ in main_variants()))
        for method in names:
            for seed in seeds:
                yield run_config(
                    "photos", method, seed, steps[0], k, codebook_init="positive", quick=quick
                )
    elif name == "sf_init":
        variants = [("kmeans", 0.15), ("random", 0.15), ("average", 0.05), ("average", 0.3)]
        if quick:
            variants = variants[:3]
        for (init, share), seed in ((v, s) for v in variants for s in seeds):
            yield run_config(
                "photos",
                "sf_diveq",
                seed,
                steps[0],
                k,
                sf_init=init,
                warmup_share=share,
                quick=quick,
            )
    elif name == "gumbel_tau":
        tuned = list(GUMBEL_VARIANTS)
        tuned = [tuned[0], tuned[-1]] if quick else tuned
        for data, method, seed in (
            (d, m, s) for d in ("photos", "signals") for m in tuned for s in seeds[:3]
        ):
            yield run_config(data, method, seed, steps[0], k, quick=quick)
    elif name == "data_init":
        for method, seed in ((m, s) for m in DATA_INIT[-2 if quick else 0 :] for s in seeds):
            yield run_config("photos", method, seed, steps[0], k, codebook_init="data", quick=quick)
        # DiVeQ in the other cells of the main comparison
        cells = [("signals", 16, steps[0])] if quick else DATA_INIT_CELLS
        for (data, codes, n), seed in ((c, s) for c in cells for s in seeds):
            yield run_config(data, "diveq", seed, n, codes, codebook_init="data", quick=quick)
    else:
        raise ValueError(f"unknown part {name!r}; choose from {PARTS}")


def plan(
    parts: tuple[str, ...] = PARTS, *, quick: bool = False
) -> tuple[list[RunConfig], list[str]]:
    """The runs of ``parts`` (each once, in plan order) and the methods left out because
    they are not implemented yet."""
    runs: dict[str, RunConfig] = {}
    missing: set[str] = set()
    for part in parts:
        for cfg in _part(part, quick):
            if available(cfg.method):
                runs.setdefault(cfg.key, cfg)
            else:
                missing.add(cfg.method)
    return list(runs.values()), sorted(missing)
