"""SF-DiVeQ initialised by k-means on the warm-up latents (an experiment, not a library option).

The layer's own warm-up init (the paper's) sets codeword ``j`` to the mean of the ``j``-th
chunk of the kept warm-up rows. Here the same rows are clustered by k-means and the centroids
are put in the order of a greedy nearest-neighbour tour, so that consecutive codewords (the
polyline's segments) are short.
"""

from __future__ import annotations

import torch

import diveq.backends.torch as dq
from experiments._examples import Layer

__all__ = ["KMeansSF", "kmeans", "tour"]


def kmeans(
    rows: torch.Tensor, k: int, generator: torch.Generator | None, iters: int = 25
) -> torch.Tensor:
    """``k`` centroids of ``rows`` ``(N, D)`` (N >= k) by Lloyd's algorithm from a k-means++
    start; a cluster that empties keeps its previous centroid."""
    if rows.shape[0] < k:
        raise ValueError(f"k-means needs at least k = {k} rows; got {rows.shape[0]}")
    first = torch.randint(rows.shape[0], (1,), generator=generator)
    centroids = rows[first]
    closest = (rows - centroids).square().sum(dim=1)
    for _ in range(k - 1):  # k-means++: the next start with probability ~ squared distance
        weights = closest if float(closest.sum()) > 0 else torch.ones_like(closest)
        pick = torch.multinomial(weights, 1, generator=generator)
        centroids = torch.cat([centroids, rows[pick]])
        closest = torch.minimum(closest, (rows - rows[pick]).square().sum(dim=1))
    for _ in range(iters):
        assign = dq.nearest(rows, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, rows)
        counts = torch.bincount(assign, minlength=k)[:, None]
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
    return centroids


def tour(points: torch.Tensor) -> torch.Tensor:
    """``points`` ``(K, D)`` reordered by a greedy nearest-neighbour tour that starts at the
    point lowest on the first principal direction."""
    centred = points - points.mean(dim=0)
    direction = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    dist = torch.cdist(points, points)
    current = int(torch.argmin(centred @ direction))
    order, free = [current], torch.ones(len(points), dtype=torch.bool)
    free[current] = False
    for _ in range(len(points) - 1):
        current = int(torch.argmin(torch.where(free, dist[current], torch.inf)))
        order.append(current)
        free[current] = False
    return points[torch.tensor(order)]


class KMeansSF(Layer):
    """:class:`diveq.backends.torch.SFDiVeQ` whose warm-up init is replaced by k-means.

    The rows of the last ``avg_iters`` warm-up calls are kept here too; right after the call
    at which the layer initialises its codebook (call ``skip_iters - 1``), the codebook is
    overwritten by the ordered k-means centroids of those rows.
    """

    def __init__(self, layer: dq.SFDiVeQ) -> None:
        super().__init__(layer)
        self.rows: list[torch.Tensor] = []

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layer = self.layer
        call = layer.train_calls + 1
        last = layer.skip_iters - 1
        if self.training and last - layer.avg_iters < call <= last:
            self.rows.append(torch.movedim(z, 1, -1).reshape(-1, z.shape[1]).detach())
        out = super().forward(z, generator)
        if self.training and call == last and self.rows:
            centroids = kmeans(torch.cat(self.rows), layer.num_codes, generator)
            with torch.no_grad():
                layer.codebook.copy_(tour(centroids))
            self.rows = []
        return out
