"""Run directories: each one owned by one run of one kind, and locked while that run works in it.

A run directory (``--out``) holds exactly one run of one kind: ``search``, ``train``, ``study``,
``demo`` or ``replicas`` (a study's, a demo's or a replicated search's directory holds one
sub-directory per search/train run, each a run directory of its own). It
contains, besides the run's own files::

    dcpnas-run.json   the marker: {"format": "dcpnas-run/1", "kind": "search", "created": ...,
                      "software": ..., "code": <fingerprint of the package source, utils.provenance>}
    .dcpnas.lock      the lock file: flock'ed (exclusive) by the one process that runs in the directory,
                      which writes its PID and command line into it (read by whoever is refused)

The rules, enforced by :func:`claim_run_dir` (and, without writing anything, :func:`check_run_dir`):

* ``''`` or a path that is a file is refused (``search --out ''`` must not write into the current folder);
* a directory whose marker names another kind is refused (a training must not overwrite a search);
* a non-empty directory without a marker is refused unless it is a run of this kind written before
  markers existed (recognised by its files, :data:`LEGACY_FILES`);
* ``resume=True`` needs a run of this kind to be there;
* a finished run is never rewritten, checkpoint or not: :func:`mark_finished` records in the marker
  that the run completed (a search or training with its ``summary.json`` counts as finished too);
  starting into it is refused, and resuming it raises :class:`RunFinished`, which the CLI reports
  in one line with exit status 0, writing nothing;
* one process at a time: the lock is an OS file lock (``fcntl.flock``), so the kernel releases it on any
  exit, SIGKILL included; a second process is refused with a message naming the holder's PID.
  The lock file is never deleted (deleting it would let a third process lock a fresh inode while a
  second still holds the old one).

Nothing is written before the claim, and callers claim only after their inputs are validated (config,
data, genotype), so a refused or failing command leaves the directory as it was. Typical use::

    from dcpnas.utils.rundir import check_run_dir, claim_run_dir

    check_run_dir(out, "search", resume=resume)         # early: read-only, fails fast
    ...validate inputs, load data...
    with claim_run_dir(out, "search", resume=resume) as run:   # mkdir, lock, marker
        ...write run.path / "config.json", checkpoints, ...

A study claims its own directory with ``kind="study"`` and each sub-run claims ``run.path / name`` with
its own kind (``claim_run_dir(run.path / "trial-0", "search")``); the locks nest without conflict. Under
torchrun only rank 0 claims (``enabled=env.is_main``); the other ranks get the same :class:`RunDir`
without a lock.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .provenance import code_fingerprint
from ..errors import RunDirError, RunFinished, WriteError
from .io import TEMP_SUFFIX, atomic_write_json, os_reason, remove_stale_temps
from .logging import is_main_process

try:
    import fcntl
except ImportError:  # not POSIX: no OS lock, the kind and emptiness checks still apply
    fcntl = None

__all__ = ["KINDS", "MARKER", "LOCK", "LEGACY_FILES", "RunDir", "RunFinished", "check_run_dir",
           "claim_run_dir", "is_finished", "mark_finished", "run_kind"]

KINDS = ("search", "train", "study", "demo", "replicas")
MARKER = "dcpnas-run.json"
LOCK = ".dcpnas.lock"
MARKER_FORMAT = "dcpnas-run/1"
#: Files by which a run of a kind written before markers existed is recognised.
LEGACY_FILES = {"search": ("ckpt/last.pt",), "train": ("checkpoint.pt", "model.pt"), "study": (), "demo": (),
                "replicas": ()}
#: The file a finished run of a kind writes last (runs marked before ``finished`` existed).
DONE_FILES = {"search": "summary.json", "train": "summary.json"}

_MARKER_LIMIT = 64 * 1024


@dataclass
class RunDir:
    """A claimed run directory: ``path``, ``kind``, and whether the claim created the run (``fresh``)."""

    path: Path
    kind: str
    fresh: bool = False
    locked: bool = False
    marker: dict = field(default_factory=dict)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"run kind must be one of {KINDS}, got {kind!r}")


def _read_marker(path: Path) -> dict:
    marker = path / MARKER
    try:
        if not marker.is_file() or marker.stat().st_size > _MARKER_LIMIT:
            raise ValueError("not a small regular file")
        data = json.loads(marker.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or data.get("kind") not in KINDS:
            raise ValueError("not a run marker")
    except (OSError, ValueError, UnicodeDecodeError):
        raise RunDirError(f"{marker} is not a dcpnas run marker (damaged?); restore it or choose another "
                          f"directory") from None
    return data


def run_kind(path: str | os.PathLike) -> str | None:
    """The kind of run in ``path`` (from its marker, or from the files of an older run), or None when
    it holds no run; a damaged marker raises :class:`RunDirError`."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / MARKER).exists():
        return _read_marker(path)["kind"]
    for kind, names in LEGACY_FILES.items():
        if any((path / name).is_file() for name in names):
            return kind
    return None


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_run_dir(path: str | os.PathLike, kind: str, *, resume: bool = False,
                  probe_lock: bool | None = None) -> Path:
    """Raise :class:`RunDirError` unless a ``kind`` run may (``resume=False``: start, ``True``: continue)
    in ``path``; reads only. Returns ``path`` as a Path.

    ``probe_lock`` (default: on rank 0 only, whose claim it anticipates) also refuses a directory whose
    lock another process holds right now, naming it: that is the first thing a user needs to know."""
    _check_kind(kind)
    if not str(path).strip():
        raise RunDirError("the run directory is an empty string (--out ''); name a directory")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a directory; choose another --out")
    if not path.exists():
        base = _nearest_existing(path)
        if not base.is_dir():
            raise RunDirError(f"cannot create run directory {path}: {base} is not a directory")
        if resume:
            raise RunDirError(f"nothing to resume in {path}: it does not exist")
        return path
    if probe_lock if probe_lock is not None else is_main_process():
        _probe(path)
    found = run_kind(path)
    if found is None:
        # The lock file and atomic-write temp files (a marker being written right now) are not content.
        others = sorted(e.name for e in os.scandir(path)
                        if e.name != LOCK and not (e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)))
        if others:
            listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise RunDirError(f"{path} is not empty and holds no dcpnas run ({listed}); choose a new or "
                              f"empty --out")
        if resume:
            raise RunDirError(f"nothing to resume in {path}: it holds no {kind} run")
    elif found != kind:
        raise RunDirError(f"{path} holds a {found} run; a {kind} run needs its own directory "
                          f"(choose another --out)")
    elif is_finished(path, kind):
        if resume:
            raise RunFinished(f"{path} holds a finished {kind} run; nothing to resume (nothing was written)")
        raise RunDirError(f"{path} holds a finished {kind} run, which is never rewritten; choose another --out")
    return path


def is_finished(path: str | os.PathLike, kind: str) -> bool:
    """Whether the ``kind`` run in ``path`` completed (its marker says so, or its last file is there)."""
    path = Path(path)
    if (path / MARKER).is_file() and _read_marker(path).get("finished"):
        return True
    done = DONE_FILES.get(kind)
    return done is not None and (path / done).is_file()


def mark_finished(run: "RunDir") -> None:
    """Record in the marker of the claimed ``run`` that it completed: from now on it is only read."""
    if not run.marker:
        return                       # ranks other than 0 check the directory without claiming it
    marker = dict(_read_marker(run.path))
    marker["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    atomic_write_json(run.path / MARKER, marker)
    run.marker = marker


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        info = json.loads(raw)
        return (f"process {int(info['pid'])} ({info.get('command', '?')}, since "
                f"{info.get('since', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (PID not recorded yet)"


def _probe(path: Path) -> None:
    """Refuse ``path`` when its lock is held; takes and drops the lock at once, writes nothing."""
    if fcntl is None or not (path / LOCK).is_file():
        return
    try:
        fd = os.open(path / LOCK, os.O_RDONLY)
    except OSError:
        return  # unreadable: the claim will say why
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise RunDirError(f"run directory {path} is in use by {_holder(fd)}; wait for it to finish or choose "
                          f"another --out") from None
    except OSError:
        pass
    finally:
        os.close(fd)


def _lock(path: Path, kind: str) -> int | None:
    """Open and flock the lock file; returns the fd (None where there is no flock)."""
    if fcntl is None:
        return None
    lock = path / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise RunDirError(f"cannot lock run directory {path}: {lock}: {os_reason(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunDirError(f"run directory {path} is in use by {holder}; wait for it to finish or choose "
                          f"another --out") from None
    except OSError as exc:
        os.close(fd)
        raise RunDirError(f"cannot lock run directory {path}: {os_reason(exc)}") from None
    info = {"pid": os.getpid(), "kind": kind, "command": shlex.join(["dcpnas", *sys.argv[1:]])[:300],
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except OSError:
        pass  # the lock holds without the note; a refused process then says "PID not recorded"
    return fd


def _unlock(fd: int | None) -> None:
    if fd is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim_run_dir(path: str | os.PathLike, kind: str, *, resume: bool = False,
                  enabled: bool = True) -> Iterator[RunDir]:
    """Own ``path`` for a ``kind`` run for the duration of the ``with`` block (see the module docstring).

    Creates the directory, takes the lock, re-checks the rules under it (another process may have won
    a race), writes the marker of a new run and removes temp files that killed writers left. Raises
    :class:`RunDirError` (refused) before writing anything of its own into a directory it refuses.
    ``enabled=False`` (ranks other than 0) only checks, without creating or locking.
    """
    path = check_run_dir(path, kind, resume=resume, probe_lock=enabled)
    if not enabled:
        yield RunDir(path, kind)
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {path}: {os_reason(exc)}") from None
    fd = _lock(path, kind)
    try:
        check_run_dir(path, kind, resume=resume, probe_lock=False)   # we hold it now
        fresh = run_kind(path) is None
        if not (path / MARKER).exists():  # a new run, or one written before markers existed
            marker = {"format": MARKER_FORMAT, "kind": kind,
                      "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                      "software": _software(), "code": code_fingerprint()}
            try:
                atomic_write_json(path / MARKER, marker)
            except WriteError as exc:
                raise RunDirError(f"cannot use run directory {path}: {exc.reason}") from None
        else:
            marker = _read_marker(path)
        remove_stale_temps(path)
        yield RunDir(path, kind, fresh=fresh, locked=fd is not None, marker=marker)
    finally:
        _unlock(fd)


def _software() -> str:
    from .. import __version__

    return f"dcpnas {__version__}"
