"""The search split: the training set cut into search-train (weights) and search-val (architecture)."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def search_split(n: int, seed: int, fraction: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(n)`` into (train_idx, val_idx): disjoint, covering, sorted int64 tensors.

    ``fraction`` of the samples (rounded down) go to search-train. The permutation comes from a private CPU
    generator, so the split depends only on (n, seed, fraction), not on global RNG state or the device.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"search split fraction must be in (0, 1), got {fraction}")
    n_train = int(n * fraction)
    if n_train < 1 or n - n_train < 1:
        raise ConfigError(f"cannot split {n} samples with fraction {fraction}: one side would be empty")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    # Sorted indices keep gathers (x[idx]) memory-friendly; the order is reshuffled every epoch anyway.
    return perm[:n_train].sort().values, perm[n_train:].sort().values
