"""Datasets as uint8 tensors + device-side batching; ImageNet through torchvision DataLoaders.

Typical use::

    ds = load_dataset("embedded")                     # or fashion-mnist, cifar10, cifar100, npz:<path>
    tr, va = search_split(len(ds.y_train), seed)
    batches = DeviceBatches(ds.x_train[tr], ds.y_train[tr], 64, device=dev, mean=ds.mean, std=ds.std,
                            augment=True, seed=seed)
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for x, y in batches: ...
"""

from .base import ImageDataset, channel_mean_std
from .batches import DeviceBatches
from .cifar import load_cifar10, load_cifar100
from .embedded import load_embedded
from .fashion_mnist import load_fashion_mnist
from .idx import read_idx, write_idx
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, build_imagenet_loaders, imagenet_search_loaders
from .npz import load_npz
from .registry import DATASET_NAMES, DatasetInfo, dataset_info, load_dataset
from .split import search_split

__all__ = [
    "DATASET_NAMES", "DatasetInfo", "DeviceBatches", "IMAGENET_MEAN", "IMAGENET_STD", "ImageDataset",
    "build_imagenet_loaders", "channel_mean_std", "dataset_info", "imagenet_search_loaders", "load_cifar10",
    "load_cifar100", "load_dataset", "load_embedded", "load_fashion_mnist", "load_npz", "read_idx",
    "search_split", "write_idx",
]
