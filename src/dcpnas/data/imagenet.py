"""ImageNet (ImageFolder layout: root/train/<class>/*, root/val/<class>/*) through torchvision DataLoaders.

Too big for device-resident uint8 tensors, so it is decoded by DataLoader workers with the standard
transforms instead of going through DeviceBatches.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from .split import search_split
from ..errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _tv():
    try:
        import torchvision  # noqa: F401 - optional dependency, only ImageNet needs it
        from torchvision import datasets, transforms
    except ImportError:
        raise DataError("ImageNet loading needs torchvision: pip install 'dcpnas[vision]'") from None
    return datasets, transforms


def train_transform(image_size: int = 224):
    _, T = _tv()
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(0.08, 1.0)),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def val_transform(image_size: int = 224):
    _, T = _tv()
    return T.Compose([
        T.Resize(int(image_size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def _folder(root: Path, split: str, transform):
    datasets, _ = _tv()
    d = root / split
    if not d.is_dir():
        raise DataError(f"ImageNet folder {d} is missing (expected {root}/train/<class>/*.JPEG and "
                        f"{root}/val/<class>/*)")
    try:
        return datasets.ImageFolder(str(d), transform=transform)
    except (FileNotFoundError, OSError) as e:  # no class folders / no images
        raise DataError(f"ImageNet folder {d}: {e}") from None


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(os.path.expanduser(str(root)))
    if not root.is_dir():
        raise DataError(f"ImageNet root {root} does not exist")
    return root


def _loader(dataset, batch_size: int, workers: int, *, train: bool, distributed: bool, rank: int,
            world_size: int, seed: int) -> DataLoader:
    sampler = (DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=train, seed=seed,
                                  drop_last=train) if distributed else None)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
        num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=train,
        persistent_workers=workers > 0,
        # A seeded generator makes the non-distributed shuffle (and worker seeds) reproducible.
        generator=torch.Generator().manual_seed(seed),
    )


def build_imagenet_loaders(root: str | os.PathLike, batch_size: int, workers: int, image_size: int = 224,
                           distributed: bool = False, rank: int = 0, world_size: int = 1, seed: int = 0
                           ) -> tuple[DataLoader, DataLoader, int]:
    """(train_loader, val_loader, num_classes) for final training / evaluation.

    With ``distributed=True`` both use a ``DistributedSampler``: call ``train_loader.sampler.set_epoch(e)``
    every epoch. ``batch_size`` is per process.
    """
    root = _check_root(root)
    train = _folder(root, "train", train_transform(image_size))
    val = _folder(root, "val", val_transform(image_size))
    if val.classes != train.classes:
        extra = sorted(set(val.classes) ^ set(train.classes))[:3]
        raise DataError(f"ImageNet {root}: train/ and val/ have different class folders (e.g. {extra})")
    kw = dict(distributed=distributed, rank=rank, world_size=world_size, seed=seed)
    return (_loader(train, batch_size, workers, train=True, **kw),
            _loader(val, batch_size, workers, train=False, **kw),
            len(train.classes))


def imagenet_search_loaders(root: str | os.PathLike, batch_size: int, workers: int, image_size: int = 224,
                            fraction: float = 1.0, distributed: bool = False, rank: int = 0,
                            world_size: int = 1, seed: int = 0) -> tuple[DataLoader, DataLoader, int]:
    """(search_train_loader, search_val_loader, num_classes) from root/train only.

    A seeded random ``fraction`` of the train folder (DARTS-style ImageNet search uses a subset) is split
    50/50 by ``search_split``; both halves use the training augmentation, as in DARTS.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"ImageNet search fraction must be in (0, 1], got {fraction}")
    root = _check_root(root)
    train = _folder(root, "train", train_transform(image_size))
    n = len(train)
    keep = torch.arange(n)
    if fraction < 1.0:
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(n, generator=g)[:max(2, int(n * fraction))].sort().values
    a, b = search_split(len(keep), seed)
    kw = dict(train=True, distributed=distributed, rank=rank, world_size=world_size, seed=seed)
    return (_loader(Subset(train, keep[a].tolist()), batch_size, workers, **kw),
            _loader(Subset(train, keep[b].tolist()), batch_size, workers, **kw),
            len(train.classes))
