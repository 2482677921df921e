"""Fashion-MNIST (Zalando Research, MIT licence) from IDX files: local folders first, download last."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import download as _download
from .base import ImageDataset
from .idx import read_idx
from .sources import cache_root, candidate_dirs, describe
from ..errors import DataError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
SUBDIR = "fashion-mnist"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Debian/Ubuntu package `dataset-fashion-mnist`. Module-level so tests can point it elsewhere.
SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)


def _find_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Map key -> existing file (``name`` or ``name.gz``) and the list of missing names."""
    found, missing = {}, []
    for key, name in FILES.items():
        for cand in (folder / name, folder / f"{name}.gz"):
            if cand.is_file():
                found[key] = cand
                break
        else:
            missing.append(name)
    return found, missing


def download_fashion_mnist(dest: Path, timeout: float = _download.TIMEOUT_S) -> None:
    """Fetch the four official .gz files into ``dest``, skipping those already there."""
    # No md5 check: redistributed copies (e.g. Debian's) are recompressed, so only the IDX structure,
    # checked on reading, is a reliable integrity test.
    for name in FILES.values():
        target = dest / f"{name}.gz"
        if not target.is_file():
            _download.download_file(URL + f"{name}.gz", target, timeout=timeout)


def _load_folder(files: dict[str, Path]) -> ImageDataset:
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xp, yp = files[f"x_{split}"], files[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(f"{xp}: expected uint8 images N×H×W, got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.dtype != np.uint8:
            raise DataError(f"{yp}: expected uint8 labels N, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{yp}: {len(y)} labels for {len(x)} images in {xp}")
        if y.size and int(y.max()) >= len(CLASSES):
            raise DataError(f"{yp}: label {int(y.max())} out of range for {len(CLASSES)} classes")
    return ImageDataset(
        name="fashion-mnist",
        classes=list(CLASSES),
        x_train=torch.from_numpy(arrays["x_train"]).unsqueeze(1),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"]).unsqueeze(1),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
    )


def locate_fashion_mnist(data_dir: str | os.PathLike | None = None) -> tuple[dict[str, Path] | None,
                                                                             list[tuple[Path, str]]]:
    """First folder holding all four files, plus what was found at each place tried."""
    tried: list[tuple[Path, str]] = []
    for folder in candidate_dirs(data_dir, SUBDIR, SYSTEM_DIRS):
        if not folder.is_dir():
            tried.append((folder, "missing"))
            continue
        found, missing = _find_files(folder)
        if not missing:
            return found, tried
        # A partial folder (e.g. an interrupted download) is skipped, not fatal: a later place may be complete.
        tried.append((folder, "no Fashion-MNIST files" if not found else f"incomplete: no {', '.join(missing)}"))
    return None, tried


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """Load Fashion-MNIST (60k/10k, 1×28×28) from data_dir, $DCPNAS_DATA, the cache or the Debian package."""
    files, tried = locate_fashion_mnist(data_dir)
    if files is not None:
        return _load_folder(files)
    failure = "download disabled"
    if download:
        dest = cache_root() / SUBDIR
        try:
            download_fashion_mnist(dest)
        except DataError as e:
            failure = str(e)
        else:
            found, missing = _find_files(dest)
            if not missing:
                return _load_folder(found)
            failure = f"download left {dest} incomplete"
    raise DataError(
        f"Fashion-MNIST not found; looked in: {describe(tried)}; {failure}. Get it with "
        f"`apt-get install dataset-fashion-mnist`, or put {', '.join(FILES.values())} (optionally .gz) in a "
        f"folder and pass --data-dir DIR or set $DCPNAS_DATA=DIR")
