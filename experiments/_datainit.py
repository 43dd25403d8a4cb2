"""A data-dependent codebook init (an experiment, not a library option).

``codebook_init="data"`` in a run of the study: the quantizer is built with the default
``U(-1/K, 1/K)`` codebook, and at its first training call, before that call quantises
anything, the codebook is overwritten by ``K`` distinct latents of the batch, drawn at random
(torch's default generator, which the training loop seeds with the run's seed). The question it
answers: does starting the codebook where the latents are remove DiVeQ's slow start on photos
(Evidence: "Why DiVeQ varies across seeds")?
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["data_init"]


def data_init(quantizer: nn.Module) -> nn.Module:
    """Give the one-codebook ``quantizer`` (a ``.codebook`` of ``K`` rows; latents
    ``(B, D, ...)``) the data init described above; returns it."""
    done = False

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        nonlocal done
        if done or not module.training:
            return
        z = args[0].detach()
        rows = torch.movedim(z, 1, -1).reshape(-1, z.shape[1])
        codebook: torch.Tensor = module.codebook  # type: ignore[assignment]
        k = codebook.shape[0]
        if rows.shape[0] < k:
            raise ValueError(f"the data init needs a batch of at least K = {k} latents")
        with torch.no_grad():
            codebook.copy_(rows[torch.randperm(rows.shape[0], device=rows.device)[:k]])
        done = True

    quantizer.register_forward_pre_hook(hook)
    return quantizer
