"""32x32 RGB patches cut from the photos that scikit-image bundles (offline, no downloads).

Whole photos are held out for testing, so the test patches come from scenes the model never
saw. ``skimage.data.cat`` is the same photo as ``chelsea``, so only the latter is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import skimage.data
import torch

__all__ = ["TEST_PHOTOS", "TRAIN_PHOTOS", "PatchData", "load_patches"]

TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
TEST_PHOTOS = ("chelsea", "coffee")
PATCH = 32


@dataclass
class PatchData:
    """uint8 patches ``(N, 3, 32, 32)``; :meth:`batch` serves float batches in ``[-0.5, 0.5]``."""

    train: torch.Tensor
    test: torch.Tensor

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        """A random training batch (with a random horizontal flip per patch)."""
        idx = torch.randint(0, self.train.shape[0], (size,), generator=generator)
        x = to_float(self.train[idx])
        flip = torch.rand(size, generator=generator) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def test_float(self) -> torch.Tensor:
        return to_float(self.test)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[-0.5, 0.5]``."""
    return x.float() / 255.0 - 0.5


def to_image(x: torch.Tensor) -> np.ndarray:
    """float ``(N, C, H, W)`` in ``[-0.5, 0.5]`` -> float64 ``(N, H, W, C)`` in ``[0, 1]``
    (signals ``(N, 1, L)`` -> ``(N, L)``)."""
    x = x.detach().clamp(-0.5, 0.5) + 0.5
    x = x.flatten(1) if x.ndim == 3 else x.permute(0, 2, 3, 1)
    return x.double().numpy()


def _grid(photo: np.ndarray, stride: int) -> np.ndarray:
    """All ``PATCH``-sized windows of ``photo`` ``(H, W, 3)`` at ``stride``: ``(N, 3, P, P)``."""
    h, w = photo.shape[:2]
    rows = range(0, h - PATCH + 1, stride)
    cols = range(0, w - PATCH + 1, stride)
    out = [photo[i : i + PATCH, j : j + PATCH] for i in rows for j in cols]
    return np.stack(out).transpose(0, 3, 1, 2)


def load_patches(
    *, per_photo: int = 1500, min_std: float = 0.02, seed: int = 0, test_stride: int = PATCH
) -> PatchData:
    """Training patches (stride 16, flat ones dropped, at most ``per_photo`` per photo) and
    every non-overlapping patch of the test photos (none dropped)."""
    rng = np.random.default_rng(seed)
    train = []
    for name in TRAIN_PHOTOS:
        patches = _grid(getattr(skimage.data, name)()[..., :3], stride=PATCH // 2)
        std = (patches / 255.0).reshape(len(patches), -1).std(axis=1)
        patches = patches[std > min_std]
        keep = rng.permutation(len(patches))[:per_photo]
        train.append(patches[keep])
    test = [_grid(getattr(skimage.data, n)()[..., :3], stride=test_stride) for n in TEST_PHOTOS]
    return PatchData(
        train=torch.from_numpy(np.concatenate(train)), test=torch.from_numpy(np.concatenate(test))
    )
