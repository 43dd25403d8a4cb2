"""torch cases: the floor, our estimators, the official layer and vector-quantize-pytorch.

Each factory returns a zero-argument callable doing one forward (+ backward where the method
trains) on fixed data; all share the same ``z``, codebook and upstream gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import diveq.backends.torch as dq
from benchmarks._kinds import DRAWS
from benchmarks._peers import load_official, load_vqtorch

Case = Callable[[], object]


def data(
    n: int, d: int, k: int, m: int = 4, seed: int = 0, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Latents, a codebook (K, D), composite codebooks (M, K, D/M) and (M, K, D), a gradient."""
    g = torch.Generator().manual_seed(seed)
    out = {
        "z": torch.randn(n, d, generator=g),
        "codebook": torch.randn(k, d, generator=g) * 0.5,
        "product": torch.randn(m, k, d // m, generator=g) * 0.5,
        "residual": torch.randn(m, k, d, generator=g) * 0.5 ** torch.arange(m)[:, None, None],
        "grad": torch.randn(n, d, generator=g),
    }
    return {name: v.to(device) for name, v in out.items()}


def floor(t: dict[str, torch.Tensor]) -> Case:
    """Bare search: one ``addmm`` for the distances and ``argmin``, no gradient."""
    z, c = t["z"], t["codebook"]

    def run() -> object:
        with torch.no_grad():
            return torch.addmm((c * c).sum(1), z, c.t(), beta=1, alpha=-2).argmin(1)

    return run


def floor_draws(t: dict[str, torch.Tensor], fn: str) -> Case:
    """The floor plus the random draws ``fn`` must make (its semantics fix them): the normal
    noise of every row, and SF-DiVeQ's ``K - 1`` uniform dithers, from a ``torch.Generator``."""
    search = floor(t)
    z, c = t["z"], t["codebook"]
    rows, uniforms = DRAWS[fn]
    gen = torch.Generator(device=z.device).manual_seed(1)

    def run() -> object:
        torch.randn((rows, *z.shape), generator=gen, device=z.device)
        if uniforms:
            torch.rand(c.shape[0] + uniforms, generator=gen, device=z.device)
        return search()

    return run


def floor_books(t: dict[str, torch.Tensor], books: str) -> Case:
    """The floor of a composite: its ``M`` bare searches (blocks of ``z`` for ``"product"``,
    all of ``z`` for ``"residual"``, whose stages search rows of the same size)."""
    cbs = t[books]
    m, _, width = cbs.shape
    z = t["z"]
    parts = [z[:, j * width : (j + 1) * width] for j in range(m)] if books == "product" else [z] * m
    bias = [(c * c).sum(1) for c in cbs]

    def run() -> object:
        with torch.no_grad():
            return [
                torch.addmm(b, x, c.t(), beta=1, alpha=-2).argmin(1)
                for x, c, b in zip(parts, cbs, bias, strict=True)
            ]

    return run


def ours(name: str, t: dict[str, torch.Tensor], books: str = "codebook") -> Case:
    """``dq.<name>`` forward + backward w.r.t. ``z`` and the codebook(s)."""
    fn = getattr(dq, name)
    z = t["z"].clone().requires_grad_(True)
    c = t[books].clone().requires_grad_(True)
    gen = torch.Generator(device=z.device).manual_seed(1)

    def run() -> object:
        z.grad = c.grad = None
        out = fn(z, c, generator=gen)
        out.values.backward(t["grad"])
        return out.indices

    return run


def official(t: dict[str, torch.Tensor], space_filling: bool = False) -> Case | None:
    """The official ``diveq`` 0.1.3 layer (``DIVEQ`` / ``SFDIVEQ``), forward + backward."""
    mod = load_official()
    if mod is None:
        return None
    k, d = t["codebook"].shape
    if space_filling:
        # warm-up done within the timing warm-up calls (the first call initialises)
        layer = mod.SFDIVEQ(k, d, skip_iters=2, avg_iters=1, allow_warning=False)
    else:
        layer = mod.DIVEQ(k, d, allow_warning=False, verbose=False)
    layer = layer.to(t["z"].device)
    with torch.no_grad():
        layer.codebook.copy_(t["codebook"])
    z = t["z"].clone().requires_grad_(True)

    def run() -> object:
        z.grad = layer.codebook.grad = None
        zq, idx, _ = layer(z)
        zq.backward(t["grad"])
        return idx

    return run


def vqtorch(t: dict[str, torch.Tensor], flavour: str) -> Case | None:
    """vector-quantize-pytorch ``VectorQuantize`` (its defaults: EMA codebook) with
    ``directional_reparam=True`` (which requires dead-code replacement) or
    ``rotation_trick=True``, forward + backward in train mode."""
    vq = load_vqtorch()
    if vq is None:
        return None
    k, d = t["codebook"].shape
    if flavour == "directional":
        options = {"directional_reparam": True, "threshold_ema_dead_code": 2}
    else:
        options = {"rotation_trick": True}
    layer = vq.VectorQuantize(dim=d, codebook_size=k, **options).to(t["z"].device)
    z = t["z"][None].clone().requires_grad_(True)

    def run() -> object:
        z.grad = None
        zq, idx, _ = layer(z)
        zq.backward(t["grad"][None])
        return idx

    return run
