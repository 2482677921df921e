"""The in-memory dataset type: uint8 images + int64 labels, validated once on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import DataError


def channel_mean_std(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of uint8 N×C×H×W images in [0,1] units.

    Chunked float64 sums: exact enough and never materialises a float copy of a 50k-image set.
    """
    c = x.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].to(torch.float64).div_(255.0).transpose(0, 1).reshape(c, -1)
        s += part.sum(dim=1)
        s2 += part.square().sum(dim=1)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / count
    var = (s2 / count - mean.square()).clamp_min(0.0)
    # A constant channel would give std 0 and divide by zero when normalising; 1.0 leaves it centred.
    std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@dataclass
class ImageDataset:
    """A labelled image dataset held as uint8 ``N×C×H×W`` tensors (normalisation happens on device).

    ``mean``/``std`` are per-channel, in [0,1] units, computed from the training images when not given.
    """

    name: str
    classes: list[str]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...] | None = field(default=None)
    std: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise DataError(f"dataset {self.name!r}: empty class list")
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(
                    f"dataset {self.name!r}: x_{split} must be a uint8 N×C×H×W tensor, got "
                    f"{getattr(x, 'dtype', type(x).__name__)} with shape {tuple(getattr(x, 'shape', ()))}")
            if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
                raise DataError(f"dataset {self.name!r}: y_{split} must be a 1-D integer tensor, got "
                                f"{getattr(y, 'dtype', type(y).__name__)} with shape {tuple(getattr(y, 'shape', ()))}")
            if y.dtype != torch.int64:
                y = y.to(torch.int64)
                setattr(self, f"y_{split}", y)
            if x.shape[0] != y.shape[0]:
                raise DataError(f"dataset {self.name!r}: x_{split} has {x.shape[0]} images but y_{split} "
                                f"has {y.shape[0]} labels")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise DataError(f"dataset {self.name!r}: y_{split} labels span [{int(y.min())}, {int(y.max())}] "
                                f"but there are {len(self.classes)} classes")
        if self.x_train.shape[0] == 0:
            raise DataError(f"dataset {self.name!r}: no training images")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"dataset {self.name!r}: train images are {tuple(self.x_train.shape[1:])} but test "
                            f"images are {tuple(self.x_test.shape[1:])}")
        if self.mean is None or self.std is None:
            mean, std = channel_mean_std(self.x_train)
            self.mean = mean if self.mean is None else self.mean
            self.std = std if self.std is None else self.std
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        c = self.x_train.shape[1]
        if len(self.mean) != c or len(self.std) != c or min(self.std) <= 0:
            raise DataError(f"dataset {self.name!r}: mean/std must have {c} entries with std > 0, "
                            f"got mean={self.mean} std={self.std}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:  # the default repr would print the tensors
        return (f"ImageDataset(name={self.name!r}, shape={self.shape}, num_classes={self.num_classes}, "
                f"train={self.x_train.shape[0]}, test={self.x_test.shape[0]})")
