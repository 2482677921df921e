"""Atomic file writes and checkpoint loading: the one writer every module uses.

Every write goes to a temp file in the destination folder, is fsync'ed, then renamed over the target with
``os.replace``: a crash or a full disk leaves either the old file or the new one, never a torn one. A
failed write is one :class:`~dcpnas.errors.WriteError` (path, reason, what was kept), and the temp
files of killed writers are removed by :func:`remove_stale_temps` (run directories call it when claimed).
torch is imported lazily so that the config and CLI layers stay fast to import.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import json
import os
import pickle
import re
import shutil
import stat
import sys
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, BinaryIO

from ..errors import DataError, WriteError

#: Ending of the temp files of :func:`atomic_write` (``.<name>.<pid>.<random>.tmp``).
TEMP_SUFFIX = ".tmp"

__all__ = ["atomic_write", "check_output_file", "check_distinct_files", "os_reason", "remove_stale_temps", "TEMP_SUFFIX", "atomic_save",
           "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "load_checkpoint",
           "load_run_checkpoint", "to_jsonable"]


def os_reason(exc: BaseException) -> str:
    """Why an OS call failed, in a few words a user acts on (permission, no space, not a directory)."""
    reasons = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EROFS: "read-only file system", errno.ENOTDIR: "a parent of it is not a directory",
               errno.EISDIR: "it is a directory", errno.ENOENT: "its folder does not exist",
               errno.EEXIST: "a parent of it is a file, not a directory",
               errno.ENAMETOOLONG: "the name is too long", errno.EIO: "input/output error"}
    code = getattr(exc, "errno", None)
    if code in reasons:
        return reasons[code]
    text = getattr(exc, "strerror", None) or _first_line(exc)
    return str(text).lower()


def _torch_write_failed(exc: BaseException, folder: Path) -> str | None:
    """The reason when torch's zip writer failed on a full disk (it raises RuntimeError, e.g.
    'unexpected pos 6848 vs 6784'), else None (a real bug: let it through)."""
    text = str(exc)
    if not any(s in text for s in ("unexpected pos", "PytorchStreamWriter", "file write failed")):
        return None
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < (1 << 20):
        return "no space left on device"
    return f"the write failed ({_first_line(exc)}; is the disk full?)"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any], *, kept: str | None = None) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temp file in the same folder, which is fsync'ed and
    renamed over ``path``. Any failure (permission, full disk, a parent that is a file) removes the temp
    file and raises one :class:`~dcpnas.errors.WriteError` naming the path, the reason and what was kept
    (``kept``, default: the previous file is unchanged / nothing was written)."""
    path = Path(path)
    existed = path.is_file()
    keep = kept or (f"the previous {path} is unchanged" if existed else "nothing was written")
    if path.is_dir():
        raise WriteError(path, "it is a directory", keep)
    special = _special_kind(path)
    if special:
        raise WriteError(path, f"it is {special}, not a regular file (dcpnas writes regular files only)", keep)
    if not path.name:
        raise WriteError(path, "no file name given", keep)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(path, os_reason(exc), keep) from None
    if not path.parent.is_dir():
        raise WriteError(path, "a parent of it is not a directory", keep)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        # os.open with mode 0o666 lets the umask decide the permissions, like a plain open() would
        # (tempfile.mkstemp would leave every checkpoint 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise WriteError(path, os_reason(exc), keep) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise WriteError(path, os_reason(exc), keep) from None
        if isinstance(exc, RuntimeError):
            reason = _torch_write_failed(exc, path.parent)
            if reason is not None:
                raise WriteError(path, reason, keep) from None
        raise
    _fsync_dir(path.parent)
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """Raise :class:`~dcpnas.errors.WriteError` when ``path`` cannot be a file to write (empty name, an
    existing directory, a parent that is a file): checked before expensive work, so that the failure
    comes first and nothing is half done. Permissions and space are found out by the write itself."""
    if not os.fspath(path).strip():
        raise WriteError("''", "no file name given", "nothing was written")
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, "it is a directory", "nothing was written")
    special = _special_kind(path)
    if special:
        raise WriteError(path, f"it is {special}, not a regular file (dcpnas writes regular files only)",
                         "nothing was written")
    parent = path.parent.absolute()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise WriteError(path, f"{parent} is not a directory", "nothing was written")
    return path


def _special_kind(path: Path) -> str | None:
    """'a device', 'a FIFO' or 'a socket' when ``path`` (followed if a link) is one, else None: the
    rename of an atomic write would replace such a node (``/dev/full``) with a plain file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        if os.path.samefile(a, b):          # also hard links and symlinks to one file
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_distinct_files(outputs: dict[str, Any], inputs: dict[str, Any] | None = None) -> None:
    """Refuse (:class:`~dcpnas.errors.WriteError`, nothing written) an output that is one of the
    command's inputs, or the same file as another of its outputs: writing it would destroy the one
    or the other. ``outputs`` / ``inputs``: option name -> path (None entries are skipped)."""
    outs = [(name, p) for name, p in outputs.items() if p is not None and os.fspath(p).strip()]
    ins = [(name, p) for name, p in (inputs or {}).items() if p is not None and os.fspath(p).strip()]
    for i, (name, path) in enumerate(outs):
        for other, src in ins:
            if _same_file(path, src):
                raise WriteError(path, f"{name} is the input {other}; writing it would destroy the input "
                                       f"(choose another file)", "nothing was written")
        for other, dst in outs[:i]:
            if _same_file(path, dst):
                raise WriteError(path, f"{name} and {other} name the same file; each output needs its own",
                                 "nothing was written")


_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True      # someone else's live process
    return True


def remove_stale_temps(folder: str | os.PathLike, *, max_depth: int = 2) -> list[Path]:
    """Delete the temp files of :func:`atomic_write` left by killed processes (their PID is gone) in
    ``folder`` and its sub-folders (``max_depth`` levels); returns what was removed. A live writer's
    temp file is left alone, so this is safe to call at any time."""
    removed: list[Path] = []
    root = Path(folder)
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        if len(Path(dirpath).parts) - base >= max_depth:
            dirnames[:] = []
        for name in filenames:
            m = _TEMP_RE.match(name)
            if m and not _alive(int(m.group(1))):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed.append(Path(dirpath, name))
                except OSError:
                    pass
    return removed


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


def atomic_save(obj: Any, path: str | os.PathLike, *, kept: str | None = None) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), kept=kept)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, kept: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (e.g. a rendered PNG)."""
    return atomic_write(path, lambda f: f.write(data), kept=kept)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", *,
                      kept: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically."""
    data = text.encode(encoding)
    return atomic_write(path, lambda f: f.write(data), kept=kept)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
                      kept: str | None = None) -> Path:
    """Write ``obj`` as JSON (tensors, numpy values, paths, dataclasses converted) to ``path`` atomically."""
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=False) + "\n"
    return atomic_write_text(path, text, kept=kept)


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


def _is_pickle(path: Path) -> bool:
    """A plain pickle (not torch's zip container) starts with the PROTO opcode."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"
    except OSError:
        return False


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
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        # The safe unpickler reports disallowed classes, foreign pickles and garbage bytes alike;
        # its message suggests weights_only=False, which is the one thing not to do with such a file.
        text = str(exc)
        if "GLOBAL" in text or "Unsupported global" in text or _is_pickle(path):
            raise DataError(f"{path} holds Python objects that dcpnas never loads (it was not written by "
                            f"dcpnas; do not load it with pickle)") from None
        raise DataError(f"cannot read checkpoint {path}: the file is truncated or corrupt") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, AttributeError, ImportError) as exc:
        raise DataError(f"cannot read checkpoint {path}: the file is truncated or corrupt "
                        f"({_first_line(exc)})") from None


def load_run_checkpoint(path: str | os.PathLike, fmt: str, fields: dict[str, type], what: str) -> dict:
    """A dcpnas checkpoint of format ``fmt`` (``what``: its name in messages), each of ``fields`` present
    with its type (ints non-negative): a foreign, damaged or crafted file is a one-line DataError, not
    a KeyError or TypeError later, in the middle of restoring a run."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise DataError(f"{path} is not a {what} (format {fmt})")
    for key, kind in fields.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise DataError(f"{path}: the {what}'s {key!r} is missing or not a {kind.__name__} "
                            f"(damaged or crafted file)")
    return state
