"""One run of the study: its full configuration, the key of its cached result row."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from experiments._data import DATASETS
from experiments._methods import METHODS

__all__ = ["RunConfig", "run_config"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run (the seed fixes init, batches and quantizer draws).

    ``num_codes`` is the codebook size ``K`` of the one-codebook methods; composites spend the
    same bits (:mod:`experiments._methods`). Options a method ignores are normalised by
    :func:`run_config` so that equal runs have equal keys.
    """

    dataset: str
    method: str
    seed: int
    steps: int
    num_codes: int
    noise_std: float = 0.0
    codebook_init: str = "symmetric"
    sf_init: str = "-"
    warmup_share: float = 0.0
    batch: int = 48
    lr: float = 1e-3
    quick: bool = False

    @property
    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @property
    def bits(self) -> int:
        """Bits per data item (patch or window)."""
        return DATASETS[self.dataset].latents * round(math.log2(self.num_codes))

    @property
    def eval_every(self) -> int:
        """Steps between test-set evaluations (15 over a run; 2 in quick runs)."""
        return max(1, self.steps // (2 if self.quick else 15))

    @property
    def diag_every(self) -> int:
        """Steps between diagnostics (30 over a run; 4 in quick runs)."""
        return max(1, self.steps // (4 if self.quick else 30))


def run_config(
    dataset: str,
    method: str,
    seed: int,
    steps: int,
    num_codes: int,
    *,
    noise_std: float = 1e-3,
    codebook_init: str = "symmetric",
    sf_init: str = "average",
    warmup_share: float = 0.15,
    quick: bool = False,
) -> RunConfig:
    """A :class:`RunConfig` with the options ``method`` ignores set to neutral values."""
    m = METHODS[method]
    if num_codes < 4 or (m.books > 1 and math.isqrt(num_codes) ** 2 != num_codes):
        raise ValueError(f"`num_codes` must be a square >= 4 for {method}; got {num_codes}")
    sf = m.space_filling
    return RunConfig(
        dataset=dataset,
        method=method,
        seed=seed,
        steps=steps,
        num_codes=num_codes,
        noise_std=float(noise_std) if m.noise else 0.0,
        codebook_init=codebook_init,
        sf_init=sf_init if sf else "-",
        warmup_share=0.0 if not sf or sf_init == "random" else float(warmup_share),
        batch=8 if quick else 48,
        quick=quick,
    )
