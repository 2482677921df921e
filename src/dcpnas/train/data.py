"""Training and test batches for one process, the same interface for in-memory sets and ImageNet.

* In-memory sets (embedded, Fashion-MNIST, CIFAR, npz) live on the device as uint8 tensors and are
  batched by :class:`dcpnas.data.DeviceBatches` (sharded by rank; epoch order from (seed, epoch)).
  The test split is cut into disjoint per-rank shards without padding, so the all-reduced accuracy
  is exactly the test accuracy.
* ImageNet is read by DataLoaders (``build_imagenet_loaders``) with a DistributedSampler under
  torchrun; batches are moved to the device here. The sampler pads the validation set to a multiple
  of the world size, as usual: a handful of images may count twice in multi-process evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import ConfigError
from ..utils.distributed import DistEnv, use_channels_last
from .config import TrainConfig

__all__ = ["TrainData", "build_data", "test_batches", "to_device"]


@dataclass
class TrainData:
    name: str
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _train: object
    _test: object
    device: torch.device
    channels_last: bool
    sampler_epoch: bool = False        # ImageNet: call sampler.set_epoch

    def steps_per_epoch(self) -> int:
        return len(self._train)

    def train_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.sampler_epoch:
            sampler = getattr(self._train, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        else:
            self._train.set_epoch(epoch)
        return to_device(self._train, self.device, self.channels_last)

    def state_dict(self) -> dict:
        """The batcher's state (its seed, epoch and sample count; ImageNet: empty)."""
        return {} if self.sampler_epoch else self._train.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Check a resumed run reads the same data (a different sample count is a DataError)."""
        if not self.sampler_epoch and state:
            self._train.load_state_dict(state)

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return to_device(self._test, self.device, self.channels_last)


def to_device(batches, device: torch.device, channels_last: bool = False):
    """``(x, y)`` batches moved to ``device`` (DataLoader batches; device-resident ones pass through)."""
    for x, y in batches:
        if x.device != device:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def _per_rank(batch_size: int, env: DistEnv) -> int:
    if batch_size % env.world_size:
        raise ConfigError(f"data.batch_size={batch_size} (global) is not divisible by the "
                          f"{env.world_size} processes")
    return batch_size // env.world_size


def _memory_data(cfg: TrainConfig, env: DistEnv, dataset=None) -> TrainData:
    from ..data import DeviceBatches, load_dataset

    d = cfg.data
    ds = dataset if dataset is not None else load_dataset(d.dataset, d.data_dir, download=d.download)
    x_train, y_train = ds.x_train, ds.y_train
    if d.train_limit and d.train_limit < len(y_train):
        g = torch.Generator().manual_seed(cfg.seed)
        keep = torch.randperm(len(y_train), generator=g)[:d.train_limit].sort().values
        x_train, y_train = x_train[keep], y_train[keep]
    x_test, y_test = ds.x_test, ds.y_test
    if d.test_limit:
        x_test, y_test = x_test[:d.test_limit], y_test[:d.test_limit]
    batch = _per_rank(d.batch_size, env)
    eval_batch = d.eval_batch_size or 2 * batch
    cl = use_channels_last(env.device, cfg.channels_last)
    common = dict(device=env.device, mean=ds.mean, std=ds.std, channels_last=cl)
    train = DeviceBatches(x_train, y_train, batch, shuffle=True, augment=d.augment,
                          crop_padding=d.crop_padding, hflip=d.hflip, seed=cfg.seed, rank=env.rank,
                          world_size=env.world_size, drop_last=True, **common)
    shard = slice(env.rank, None, env.world_size)
    test = DeviceBatches(x_test[shard], y_test[shard], eval_batch, shuffle=False, augment=False,
                         drop_last=False, **common)
    c, h, _ = ds.shape
    return TrainData(ds.name, c, h, ds.num_classes, tuple(ds.mean), tuple(ds.std), train, test,
                     env.device, cl)


def _imagenet_data(cfg: TrainConfig, env: DistEnv) -> TrainData:
    from ..data import IMAGENET_MEAN, IMAGENET_STD, build_imagenet_loaders

    d = cfg.data
    batch = _per_rank(d.batch_size, env)
    train, test, num_classes = build_imagenet_loaders(
        d.data_dir, batch, d.workers, image_size=d.image_size, distributed=env.distributed,
        rank=env.rank, world_size=env.world_size, seed=cfg.seed)
    cl = use_channels_last(env.device, cfg.channels_last)
    return TrainData("imagenet", 3, d.image_size, num_classes, IMAGENET_MEAN, IMAGENET_STD, train, test,
                     env.device, cl, sampler_epoch=True)


def build_data(cfg: TrainConfig, env: DistEnv, dataset=None) -> TrainData:
    """This process's batches for ``cfg.data`` (``dataset``: an already loaded ImageDataset)."""
    if cfg.data.dataset == "imagenet":
        return _imagenet_data(cfg, env)
    return _memory_data(cfg, env, dataset)


def test_batches(dataset: str, data_dir, spec, device: torch.device, batch_size: int, workers: int = 8):
    """Test-split batches of ``dataset`` for the model ``spec`` describes (normalised with the
    model's own mean/std), after checking the images and classes fit the model."""
    from ..errors import DataError

    if dataset == "imagenet":
        from ..data import build_imagenet_loaders

        if not data_dir:
            raise ConfigError("evaluating on imagenet needs --data-dir (the ImageNet root)")
        _, loader, num_classes = build_imagenet_loaders(data_dir, batch_size, workers,
                                                        image_size=spec.image_size)
        shape = (3, spec.image_size, spec.image_size)
        batches = loader
    else:
        from ..data import DeviceBatches, load_dataset

        ds = load_dataset(dataset, data_dir)
        shape, num_classes = ds.shape, ds.num_classes
        batches = None
    if num_classes != spec.num_classes or shape[0] != spec.in_channels:
        raise DataError(f"dataset {dataset!r} has {num_classes} classes and {shape[0]}-channel images; the "
                        f"model was trained for {spec.num_classes} classes and {spec.in_channels} channels")
    if batches is None:
        batches = DeviceBatches(ds.x_test, ds.y_test, batch_size, device=device, mean=spec.mean, std=spec.std,
                                shuffle=False, augment=False, drop_last=False)
    return to_device(batches, device)
