"""IDX files (the MNIST / Fashion-MNIST container), raw or gzip-compressed, read with numpy."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils.bounded import read_upto, regular_file

# IDX type byte -> big-endian numpy dtype (from the format description on yann.lecun.com/exdb/mnist).
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}


#: Bound on an IDX payload (Fashion-MNIST's train images are 47 MB); a gzip bomb must not fill the memory.
MAX_BYTES = 4 << 30


def _read_bytes(path: Path) -> bytes:
    # Decide by magic bytes rather than the suffix: a renamed file still reads.
    regular_file(path, what="IDX file", limit=MAX_BYTES)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                data = read_upto(f, MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise DataError(f"IDX file {path} decompresses to more than {MAX_BYTES >> 30} GiB")
            return data
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"corrupt or truncated gzip file {path}: {e}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a native-endian numpy array, checking magic number, dims and payload length."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"truncated IDX file {path}: {len(data)} bytes, no header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES:
        raise DataError(f"not an IDX file {path}: bad magic number 0x{data[:4].hex()}")
    if ndim == 0:
        raise DataError(f"bad IDX file {path}: zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"truncated IDX file {path}: header needs {header} bytes, file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        kind = "truncated" if len(data) - header < expected else "oversized"
        raise DataError(f"{kind} IDX file {path}: dims {list(dims)} need {expected} payload bytes, "
                        f"found {len(data) - header}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an IDX file (gzip-compressed when the name ends in .gz). Used by tests and tools."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"cannot write {path}: IDX has no type for dtype {array.dtype}")
    payload = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(_DTYPES[code], copy=False).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
