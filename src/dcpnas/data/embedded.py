"""The default dataset shipped inside the package: a class-balanced Fashion-MNIST subset (no download).

Made by scripts/make_embedded_subset.py; see src/dcpnas/resources/LICENSE-fashion-mnist.txt.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from .base import ImageDataset
from ..errors import DataError

RESOURCE = "fashion-mnist-subset.npz"


def embedded_path():
    """The packaged file as an importlib.resources Traversable (works from a wheel or a source tree)."""
    return resources.files("dcpnas") / "resources" / RESOURCE


def load_embedded() -> ImageDataset:
    """6000 train / 1000 test 1×28×28 Fashion-MNIST images, 600 / 100 per class."""
    res = embedded_path()
    try:
        with resources.as_file(res) as path, np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "classes")}
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"embedded dataset {res} is missing or corrupt ({e}); reinstall dcpnas") from None
    return ImageDataset(
        name="embedded",
        classes=[str(c) for c in arrays["classes"]],
        x_train=torch.from_numpy(arrays["x_train"]).unsqueeze(1),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"]).unsqueeze(1),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
    )
