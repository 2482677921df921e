"""The search's inputs: search-train (weights) and search-val (architecture) batches for this rank.

In-memory datasets go through ``DeviceBatches`` (uint8 on the device, seeded per epoch, sharded by
rank); ImageNet through ``imagenet_search_loaders`` (DataLoader workers, DistributedSampler).
Both expose ``set_epoch(e)``, ``len()`` and iteration over ``(x, y)`` on the compute device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...data import DeviceBatches, imagenet_search_loaders, load_dataset, search_split
from ...errors import ConfigError
from ...utils.distributed import DistEnv, use_channels_last
from ..config import SearchConfig

__all__ = ["SearchData", "LoaderBatches", "build_search_data"]


@dataclass
class SearchData:
    train: object          # DeviceBatches or LoaderBatches: updates weights
    val: object            # updates the architecture; scores accuracies
    in_channels: int
    num_classes: int
    image_size: int
    num_train: int         # images in each split (all ranks together)
    num_val: int


class LoaderBatches:
    """A DataLoader seen like DeviceBatches: ``set_epoch``, ``len``, batches moved to ``device``."""

    def __init__(self, loader, device: torch.device, channels_last: bool = False):
        self.loader, self.device, self.channels_last = loader, device, channels_last

    def set_epoch(self, epoch: int) -> None:
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def downsample(x_uint8: torch.Tensor, side: int) -> torch.Tensor:
    """Area-downsample N×C×H×W uint8 images to side×side (a cheaper search proxy), still uint8."""
    out = torch.nn.functional.adaptive_avg_pool2d(x_uint8.float(), side)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def build_search_data(cfg: SearchConfig, env: DistEnv) -> SearchData:
    """Load ``cfg.data.dataset`` and cut it into this rank's search-train / search-val batches."""
    d = cfg.data
    channels_last = use_channels_last(env.device, cfg.channels_last)
    if d.dataset == "imagenet":
        train, val, num_classes = imagenet_search_loaders(
            d.data_dir, d.batch_size, d.workers, d.image_size, fraction=d.imagenet_fraction,
            distributed=env.distributed, rank=env.rank, world_size=env.world_size, seed=cfg.seed)
        return SearchData(LoaderBatches(train, env.device, channels_last),
                          LoaderBatches(val, env.device, channels_last), 3, num_classes,
                          d.image_size, len(train.dataset), len(val.dataset))
    ds = load_dataset(d.dataset, d.data_dir, download=d.download)
    x, y = ds.x_train, ds.y_train
    if d.limit and d.limit < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))[:d.limit]
        keep = keep.sort().values
        x, y = x[keep], y[keep]
    if d.resolution and d.resolution < x.shape[-1]:
        x = downsample(x, d.resolution)
    tr, va = search_split(len(y), cfg.seed, d.split_fraction)
    for name, idx in (("search-train", tr), ("search-val", va)):
        if len(idx) < d.batch_size * env.world_size:
            raise ConfigError(f"data: {name} has {len(idx)} images, fewer than one batch of "
                              f"{d.batch_size} on each of {env.world_size} process(es); lower "
                              f"data.batch_size or raise data.limit")
    common = dict(device=env.device, mean=ds.mean, std=ds.std, shuffle=True, augment=d.augment,
                  rank=env.rank, world_size=env.world_size, channels_last=channels_last)
    train = DeviceBatches(x[tr], y[tr], d.batch_size, seed=cfg.seed, **common)
    # A different seed decorrelates the val order from the train order of the same epoch.
    val = DeviceBatches(x[va], y[va], d.batch_size, seed=cfg.seed + 1, **common)
    return SearchData(train, val, int(x.shape[1]), ds.num_classes, int(x.shape[-1]), len(tr), len(va))
