"""Bring-your-own dataset: one .npz with x_train, y_train, x_test, y_test (optional: classes, name)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from .base import ImageDataset
from ..errors import DataError
from ..utils.bounded import regular_file

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
_CHANNELS = (1, 3)
#: More classes than any image benchmark has (ImageNet-21k: 21,841); a label of 10⁹ must not build 10⁹
#: class names.
MAX_CLASSES = 100_000
#: Bound on the decompressed size of all arrays together (a zip bomb must not fill the memory).
MAX_BYTES = 16 << 30


def _layout(shape: tuple[int, ...], path: Path, key: str) -> str:
    """Which of the accepted layouts ``shape`` is: 'NHW', 'NCHW' or 'NHWC'."""
    if len(shape) in (3, 4) and shape[0] == 0:
        raise DataError(f"{path}: {key!r} holds no images (shape {shape})")
    if len(shape) in (3, 4) and 0 in shape:
        raise DataError(f"{path}: {key!r} has shape {shape}: images must be at least 1x1")
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DataError(f"{path}: {key!r} must be N×H×W, N×H×W×C or N×C×H×W, got shape {shape}")
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    why = "ambiguous (both dim 1 and dim 3 could be channels)" if first else "no dim of size 1 or 3 for channels"
    raise DataError(f"{path}: {key!r} has shape {shape}: {why}")


def _to_nchw(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    layout = _layout(x.shape, path, key)
    if layout == "NHW":
        return x[:, None]
    return x.transpose(0, 3, 1, 2) if layout == "NHWC" else x


def _to_uint8(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
            raise DataError(f"{path}: float {key!r} must lie in [0, 1], found [{x.min()}, {x.max()}]")
        return np.rint(x * 255.0).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):  # e.g. int64 pixels saved without a cast
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{path}: integer {key!r} must lie in [0, 255], found [{x.min()}, {x.max()}]")
        return x.astype(np.uint8)
    raise DataError(f"{path}: {key!r} has dtype {x.dtype}; use uint8, or float in [0, 1]")


def _labels(y: np.ndarray, n: int, path: Path, key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {key!r} must be 1-D integer labels, got {y.dtype} {y.shape}")
    if len(y) != n:
        raise DataError(f"{path}: {key!r} has {len(y)} labels but the images have {n}")
    if y.size and y.min() < 0:
        raise DataError(f"{path}: {key!r} has negative label {y.min()}")
    if y.size and y.max() >= MAX_CLASSES:
        raise DataError(f"{path}: {key!r} has label {y.max()}; labels are class indices 0..K-1 with at most "
                        f"{MAX_CLASSES} classes")
    return y.astype(np.int64)


def _check_file(path: Path) -> None:
    """A regular file (not a FIFO or device) whose arrays decompress to at most MAX_BYTES."""
    if not path.exists():
        raise DataError(f"npz dataset {path} does not exist")
    regular_file(path, what="npz dataset")
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(i.file_size for i in zf.infolist())
            if total <= MAX_BYTES:
                for info in zf.infolist():
                    if info.filename.endswith(".npy"):
                        _check_header(zf, info, path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
        raise DataError(f"cannot read npz dataset {path}: {e}") from None
    if total > MAX_BYTES:
        raise DataError(f"npz dataset {path} holds {total / (1 << 30):.1f} GiB of arrays; at most "
                        f"{MAX_BYTES >> 30} GiB")


def _check_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """An array's header must describe no more data than its member holds: numpy allocates the whole
    array from the header's shape before it reads a byte (a 4 KB file could ask for 37 GiB)."""
    from ..utils.budget import array_bytes, check_array

    key = info.filename[:-4]
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    if dtype.hasobject:
        return                           # np.load(allow_pickle=False) refuses it with its own message
    need = array_bytes(shape, dtype.itemsize)
    if need > info.file_size:
        raise DataError(f"{path}: {key!r} claims shape {tuple(shape)} ({need} bytes) but holds {info.file_size} "
                        f"bytes (truncated or crafted)")
    check_array(f"{path}: {key!r} of shape {tuple(shape)}", shape, dtype.itemsize, error=DataError)


def _open(path: Path) -> dict[str, np.ndarray]:
    _check_file(path)
    try:
        # allow_pickle=False: an .npz from elsewhere must not be able to run code.
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in REQUIRED if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing key {missing[0]!r} (has {', '.join(z.files) or 'none'}; needs "
                                f"{', '.join(REQUIRED)})")
            out = {k: z[k] for k in z.files}
            if "classes" in out and out["classes"].size > MAX_CLASSES:
                raise DataError(f"{path}: 'classes' names {out['classes'].size} classes; at most {MAX_CLASSES}")
            return out
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read npz dataset {path}: {e}") from None


def load_npz(path: str | os.PathLike, name: str | None = None) -> ImageDataset:
    """Load a user .npz. Images: uint8, or float in [0,1]; any of the three layouts; labels 0..K-1."""
    path = Path(os.path.expanduser(str(path)))
    z = _open(path)
    xs, ys = {}, {}
    for split in ("train", "test"):
        x = _to_uint8(_to_nchw(z[f"x_{split}"], path, f"x_{split}"), path, f"x_{split}")
        xs[split] = torch.from_numpy(np.ascontiguousarray(x))
        ys[split] = torch.from_numpy(_labels(z[f"y_{split}"], len(x), path, f"y_{split}"))
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise DataError(f"{path}: 'x_train' images are {tuple(xs['train'].shape[1:])} (C,H,W) but 'x_test' are "
                        f"{tuple(xs['test'].shape[1:])}")
    n_classes = 1 + max(int(y.max()) for y in ys.values() if y.numel())
    if ys["train"].numel() and int(ys["train"].min()) == int(ys["train"].max()):
        raise DataError(f"{path}: every 'y_train' label is {int(ys['train'][0])}; a classifier needs at least "
                        f"two classes to learn")
    if "classes" in z:
        classes = [str(c) for c in z["classes"].reshape(-1)]
        if len(classes) < n_classes:
            raise DataError(f"{path}: 'classes' names {len(classes)} classes but labels go up to {n_classes - 1}")
    else:
        classes = [str(i) for i in range(n_classes)]
    return ImageDataset(name=name or f"npz:{path.name}", classes=classes, x_train=xs["train"],
                        y_train=ys["train"], x_test=xs["test"], y_test=ys["test"])


def npz_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(channels, image size, num_classes) from the array headers and labels, without decoding the images."""
    path = Path(os.path.expanduser(str(path)))
    _check_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for key in REQUIRED:
                if f"{key}.npy" not in names:
                    raise DataError(f"{path}: missing key {key!r}")
            with zf.open("x_train.npy") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(f)
        with np.load(path, allow_pickle=False) as z:
            labels = [_labels(z[k], len(z[k]), path, k) for k in ("y_train", "y_test")]
            if not labels[0].size:
                raise DataError(f"{path}: 'y_train' holds no labels")
            n_classes = 1 + max(int(y.max()) for y in labels if y.size)
            if "classes" in z.files:
                if z["classes"].size > MAX_CLASSES:
                    raise DataError(f"{path}: 'classes' names {z['classes'].size} classes; at most {MAX_CLASSES}")
                n_classes = max(n_classes, z["classes"].size)
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read npz dataset {path}: {e}") from None
    layout = _layout(tuple(shape), path, "x_train")
    if layout == "NHW":
        c, h = 1, shape[1]
    else:
        c, h = (shape[1], shape[2]) if layout == "NCHW" else (shape[3], shape[1])
    return int(c), int(h), int(n_classes)
