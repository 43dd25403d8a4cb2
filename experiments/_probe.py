"""Diagnostics logged during training, through hooks (the training loop is the demo's).

Every ``every`` train-mode calls of the quantizer, on that batch:

- ``grad_norm``: norm of the loss gradient at the encoder output (the quantizer's input),
  over the whole batch; ``ste_norm`` and ``cos_ste``: the norm of the straight-through
  gradient on the same batch (the reconstruction loss's gradient at the hard-quantised
  latents, with the same decoder) and the cosine between the two;
- ``dist``: mean ``||c_k - z||`` from a latent to its nearest codeword (composites: to its
  hard quantisation), the scale ``noise_std`` is compared with;
- ``code_spread`` and ``latent_spread``: RMS distance to the mean of the (first) codebook's
  rows and of the latents (the first block, for product codebooks);
- ``replaced``: codeword rows rewritten inside the quantizer's forward since the last record
  (dead-code replacements; for SF, the warm-up init); NaN for quantizers whose codebook moves
  in every forward pass (EMA);
- ``train_usage``: % of the codewords in use in that training call (mean over codebooks), the
  measure the paper reports: the selected codes, and for SF methods both ends of every
  selected segment (the two codewords the dithered point interpolates). 0 during an SF
  warm-up, where no codeword is used.

At every evaluation, for SF methods: the test-set usage, perplexity and PSNR when decoding at
the nearest codewords (``vertex_*``), the measure the official code reports.
"""

from __future__ import annotations

from typing import Any

import torch

import diveq.backends.torch as dq
from experiments._examples import evaluate

__all__ = ["Probe"]


def _spread(rows: torch.Tensor) -> float:
    return float((rows - rows.mean(dim=0)).square().sum(dim=1).mean().sqrt())


def _on_polyline(layer: Any) -> bool:
    """Whether the SF ``layer``'s last train call quantised on its polyline (segment indices),
    not inside its warm-up (one codebook: ``-1``; composites: composite DiVeQ's codewords)."""
    if not getattr(layer, "space_filling", False):
        return False
    return bool(layer.skip_iters <= 1 or layer.train_calls >= layer.skip_iters)


def _train_usage(quantizer: Any, indices: torch.Tensor) -> float:
    """% of codewords used by a training call's ``indices`` (composites: trailing axis ``M``;
    SF on the polyline: segment indices, both ends counted), mean over the codebooks."""
    m, k = quantizer.books.shape[:2]
    space_filling = _on_polyline(getattr(quantizer, "layer", None))
    shares = []
    for col in indices.detach().reshape(-1, m).unbind(dim=1):
        col = col[col >= 0]
        used = torch.zeros(k, dtype=torch.bool, device=col.device)
        used[col] = True
        if space_filling:
            used[col + 1] = True
        shares.append(100.0 * float(used.float().mean()))
    return sum(shares) / len(shares)


class Probe:
    """Hooks on ``model`` (with ``encoder``, ``quantizer`` and ``decoder``) that fill
    :attr:`log` (per diagnostic step) and, from :meth:`on_eval` on the ``test`` set,
    :attr:`evals` (per evaluation)."""

    def __init__(
        self, model: Any, every: int, test: torch.Tensor, *, rewrites: bool = True
    ) -> None:
        self.model, self.every, self.test = model, every, test
        self.rewrites = rewrites
        self.calls = 0
        self.log: dict[str, list[float]] = {
            k: []
            for k in (
                "step",
                "grad_norm",
                "ste_norm",
                "cos_ste",
                "dist",
                "code_spread",
                "latent_spread",
                "replaced",
                "train_usage",
            )
        }
        self.evals: dict[str, list[float]] = {
            k: [] for k in ("step", "vertex_usage", "vertex_perplexity", "vertex_psnr")
        }
        self._x: torch.Tensor | None = None
        self._before: torch.Tensor | None = None
        self._replaced = 0
        model.register_forward_pre_hook(self._model_input)
        model.quantizer.register_forward_pre_hook(self._before_quantizer)
        model.quantizer.register_forward_hook(self._after_quantizer)

    def _model_input(self, module: Any, args: tuple[Any, ...]) -> None:
        if module.training:
            self._x = args[0]

    def _before_quantizer(self, module: Any, args: tuple[Any, ...]) -> None:
        if module.training:
            self.calls += 1
            self._before = module.books.detach().clone()

    def _after_quantizer(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        if not module.training:
            return
        assert self._before is not None
        books = module.books.detach()
        self._replaced += int((books != self._before).any(dim=-1).sum())
        if self.calls % self.every == 0:
            self._diagnose(module, args[0])
            self.log["train_usage"].append(_train_usage(module, output[1]))

    def _diagnose(self, quantizer: Any, z: torch.Tensor) -> None:
        assert self._x is not None
        zd = z.detach()
        quantizer.eval()  # hard inference; changes no state
        with torch.no_grad():
            hard = quantizer(zd)[0]
        quantizer.train()
        v = hard.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = torch.mean((self.model.decoder(v) - self._x) ** 2)
            (g_ste,) = torch.autograd.grad(loss, v)
        books = quantizer.books.detach()
        rows = torch.movedim(zd, 1, -1).reshape(-1, zd.shape[1])
        if books.shape[0] == 1:
            near = dq.quantize(rows, books[0]).values
        else:
            near = torch.movedim(hard, 1, -1).reshape(rows.shape)
        log = self.log
        log["step"].append(self.calls)
        log["dist"].append(float((near - rows).norm(dim=1).mean()))
        log["code_spread"].append(_spread(books[0]))
        log["latent_spread"].append(_spread(rows[:, : books.shape[-1]]))
        log["replaced"].append(self._replaced if self.rewrites else float("nan"))
        log["ste_norm"].append(float(g_ste.norm()))
        self._replaced = 0
        if z.requires_grad:
            z.register_hook(lambda g: self._gradient(g, g_ste))
        else:  # no gradient reaches the quantizer's input
            log["grad_norm"].append(float("nan"))
            log["cos_ste"].append(float("nan"))

    def _gradient(self, g: torch.Tensor, g_ste: torch.Tensor) -> None:
        a, b = g.detach().flatten(), g_ste.flatten()
        self.log["grad_norm"].append(float(a.norm()))
        self.log["cos_ste"].append(float(a @ b / (a.norm() * b.norm()).clamp_min(1e-30)))

    def on_eval(self, step: int, model: Any) -> None:
        """After an evaluation: the nearest-codeword (vertex) measures of SF models."""
        q = model.quantizer
        if not hasattr(q, "vertices") or not getattr(q.layer, "space_filling", False):
            return
        q.vertices = True
        try:
            m = evaluate(model, self.test)
        finally:
            q.vertices = False
        self.evals["step"].append(step)
        self.evals["vertex_usage"].append(m.usage)
        self.evals["vertex_perplexity"].append(m.perplexity)
        self.evals["vertex_psnr"].append(m.psnr)
