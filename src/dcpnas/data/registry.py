"""Dataset names -> loaders, and shape facts (for cost profiling) without loading anything."""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

from .base import ImageDataset
from .cifar import load_cifar10, load_cifar100
from .embedded import load_embedded
from .fashion_mnist import load_fashion_mnist
from .npz import load_npz, npz_info
from ..errors import DataError

# In-memory datasets, loadable with load_dataset. ImageNet goes through build_imagenet_loaders instead.
DATASET_NAMES: tuple[str, ...] = ("embedded", "fashion-mnist", "cifar10", "cifar100")


class DatasetInfo(NamedTuple):
    channels: int
    image_size: int
    num_classes: int


_INFO = {
    "embedded": DatasetInfo(1, 28, 10),
    "fashion-mnist": DatasetInfo(1, 28, 10),
    "cifar10": DatasetInfo(3, 32, 10),
    "cifar100": DatasetInfo(3, 32, 100),
    "imagenet": DatasetInfo(3, 224, 1000),
}

_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}


def _npz_path(name: str) -> str | None:
    if name.startswith("npz:"):
        return name[4:]
    if name.lower().endswith(".npz"):
        return name
    return None


def _unknown(name: str) -> DataError:
    return DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}, "
                     f"or npz:<path> / <path>.npz")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """Load an in-memory dataset by name: embedded, fashion-mnist, cifar10, cifar100, npz:<path>, <path>.npz."""
    path = _npz_path(name)
    if path is not None:
        if not path:
            raise DataError("dataset 'npz:' needs a path, e.g. npz:data/mine.npz")
        return load_npz(path)
    if name == "embedded":
        return load_embedded()
    if name in _LOADERS:
        return _LOADERS[name](data_dir=data_dir, download=download)
    if name == "imagenet":
        raise DataError("imagenet is not an in-memory dataset; it is read through build_imagenet_loaders")
    raise _unknown(name)


def dataset_info(name: str) -> DatasetInfo:
    """(channels, image size, num_classes) for a dataset name, without loading the images."""
    path = _npz_path(name)
    if path is not None:
        return DatasetInfo(*npz_info(path))
    if name in _INFO:
        return _INFO[name]
    raise _unknown(name)
