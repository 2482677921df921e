"""Atomic file writes and checkpoint loading.

Every write goes to a temp file in the destination folder, is fsync'ed, then renamed over the target with
``os.replace``: a crash or a full disk leaves either the old file or the new one, never a torn one.
torch is imported lazily so that the config and CLI layers stay fast to import.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import pickle
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, BinaryIO

from ..errors import DataError

__all__ = ["atomic_save", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "load_checkpoint", "to_jsonable"]


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, like a plain open() would
    # (tempfile.mkstemp would leave every checkpoint 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); best effort, some filesystems refuse directory fsync."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    import torch

    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (e.g. a rendered PNG)."""
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    data = text.encode(encoding)
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (tensors, numpy values, paths, dataclasses converted) to ``path`` atomically."""
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=False) + "\n"
    return atomic_write_text(path, text)


def to_jsonable(obj: Any) -> Any:
    """``obj`` with tensors / numpy arrays and scalars / paths / enums / dataclasses made JSON-ready.

    Scalars become Python numbers, arrays nested lists. Non-finite floats stay floats (Python's json
    writes them as NaN / Infinity, which Python reads back).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if type(obj) is int:  # not IntEnum / numpy: those are converted below
        return obj
    if isinstance(obj, float):  # also numpy.float64, a float subclass
        return float(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    # Only look for torch / numpy types if those modules are loaded: an object cannot be a tensor otherwise.
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            obj = obj.detach().cpu()
            return obj.item() if obj.numel() == 1 and obj.dim() == 0 else obj.tolist()
        if isinstance(obj, (torch.device, torch.dtype)):
            return str(obj)
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    return str(obj)  # last resort: a readable log line beats a crash in the middle of a run


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", *, weights_only: bool = True) -> Any:
    """``torch.load`` a checkpoint; a missing, truncated or corrupt file raises a one-line :class:`DataError`.

    ``weights_only=True`` (PyTorch's safe default) accepts tensors and plain containers/scalars; pass
    ``weights_only=False`` only for trusted files that hold other Python objects.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise DataError(f"checkpoint is not a file: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        # The safe unpickler reports both disallowed classes and garbage bytes as UnpicklingError;
        # only the former can be fixed by the caller.
        if "Unsupported global" in str(exc):
            raise DataError(
                f"checkpoint {path} holds objects other than tensors and plain containers "
                f"(load it with weights_only=False only if you trust it)"
            ) from exc
        raise DataError(f"cannot read checkpoint {path}: the file is truncated or corrupt ({_first_line(exc)})") from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, AttributeError, ImportError) as exc:
        raise DataError(f"cannot read checkpoint {path}: the file is truncated or corrupt ({_first_line(exc)})") from exc
