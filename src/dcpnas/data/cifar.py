"""CIFAR-10 / CIFAR-100 in the official "python version" pickle layout; local folders first, download last."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import download as _download
from .base import ImageDataset
from .sources import cache_root, candidate_dirs, describe
from ..errors import DataError
from ..utils.bounded import regular_file


@dataclass(frozen=True)
class CifarSpec:
    name: str
    folder: str             # the folder inside the official tarball
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: bytes
    names_key: bytes
    url: str
    md5: str


CIFAR10 = CifarSpec("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                    "test_batch", "batches.meta", b"labels", b"label_names",
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
CIFAR100 = CifarSpec("cifar100", "cifar-100-python", ("train",), "test", "meta", b"fine_labels",
                     b"fine_label_names", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                     "eb9058c3a382ffc7106e4002c42a8d85")
SPECS = {s.name: s for s in (CIFAR10, CIFAR100)}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The batches are pickles; allow only what numpy arrays need so a planted file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol >= 5
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict:
    """Read one batch (bytes keys, as written by the Python 2 originals). Errors name the file."""
    # A batch is 31 MB (CIFAR-100 train: 155 MB); a FIFO, a device or a huge file is refused unread.
    regular_file(path, what="CIFAR file", limit=1 << 30)
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - unpickling corrupt bytes raises nearly anything
        raise DataError(f"corrupt or truncated CIFAR file {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"corrupt CIFAR file {path}: expected a dict, got {type(obj).__name__}")
    return obj


def _get(d: dict, key: bytes, path: Path):
    # Accept str keys too (files re-pickled under Python 3).
    for k in (key, key.decode()):
        if k in d:
            return d[k]
    raise DataError(f"CIFAR file {path} has no {key.decode()!r} entry")


def _read_batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    d = read_pickle(path)
    data = np.asarray(_get(d, b"data", path))
    labels = np.asarray(_get(d, spec.label_key, path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"CIFAR file {path}: 'data' should be uint8 N×3072, got {data.dtype} {data.shape}")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"CIFAR file {path}: {spec.label_key.decode()!r} should be {len(data)} integer labels, "
                        f"got {labels.dtype} {labels.shape}")
    # Rows are 1024 red, 1024 green, 1024 blue values, each row-major 32×32: exactly C×H×W.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _class_names(path: Path, spec: CifarSpec) -> list[str]:
    names = _get(read_pickle(path), spec.names_key, path)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _missing(folder: Path, spec: CifarSpec) -> list[str]:
    return [n for n in (*spec.train, spec.test, spec.meta) if not (folder / n).is_file()]


def locate_cifar(spec: CifarSpec, data_dir: str | os.PathLike | None = None
                 ) -> tuple[Path | None, list[tuple[Path, str]]]:
    tried: list[tuple[Path, str]] = []
    for folder in candidate_dirs(data_dir, spec.folder):
        if not folder.is_dir():
            tried.append((folder, "missing"))
            continue
        missing = _missing(folder, spec)
        if not missing:
            return folder, tried
        n_all = len(spec.train) + 2
        tried.append((folder, f"no {spec.folder} files" if len(missing) == n_all
                      else f"incomplete: no {', '.join(missing)}"))
    return None, tried


def download_cifar(spec: CifarSpec, timeout: float = _download.TIMEOUT_S) -> Path:
    """Fetch and md5-check the official tarball into the cache, extract it safely, drop the tarball."""
    root = cache_root()
    archive = root / spec.url.rsplit("/", 1)[1]
    _download.download_file(spec.url, archive, md5=spec.md5, timeout=timeout)
    folder = _download.safe_extract(archive, root, spec.folder)
    archive.unlink(missing_ok=True)
    return folder


def _load_folder(folder: Path, spec: CifarSpec) -> ImageDataset:
    parts = [_read_batch(folder / n, spec) for n in spec.train]
    x_test, y_test = _read_batch(folder / spec.test, spec)
    return ImageDataset(
        name=spec.name,
        classes=_class_names(folder / spec.meta, spec),
        x_train=torch.from_numpy(np.concatenate([p[0] for p in parts])),
        y_train=torch.from_numpy(np.concatenate([p[1] for p in parts])),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test)),
        y_test=torch.from_numpy(y_test),
    )


def load_cifar(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    spec = SPECS[name]
    folder, tried = locate_cifar(spec, data_dir)
    if folder is not None:
        return _load_folder(folder, spec)
    failure = "download disabled"
    if download:
        try:
            return _load_folder(download_cifar(spec), spec)
        except DataError as e:
            failure = str(e)
    raise DataError(
        f"{spec.name} not found; looked in: {describe(tried)}; {failure}. Download {spec.url} and extract it "
        f"into a folder, then pass --data-dir DIR or set $DCPNAS_DATA=DIR (DIR/{spec.folder}/ must exist)")


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """CIFAR-10: 50k/10k 3×32×32 images, 10 classes."""
    return load_cifar("cifar10", data_dir, download)


def load_cifar100(data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """CIFAR-100 with the 100 fine labels: 50k/10k 3×32×32 images."""
    return load_cifar("cifar100", data_dir, download)
