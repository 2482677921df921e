"""Reading user files within bounds: regular files only, at most a stated size.

A path the user gives may be a FIFO (``open`` blocks forever), a device (``/dev/zero`` never ends) or a
file far larger than its format can mean. Every text-like format dcpnas reads (genotypes, configs, the
packed model header) goes through :func:`read_bytes` / :func:`read_text`, which check the file type
with ``stat`` before opening and never read more than ``limit`` bytes, in chunks (a cap is a bound, not
an amount to reserve).
"""

from __future__ import annotations

import os
import stat
from typing import Type

from ..errors import DataError, DcpnasError

__all__ = ["KIB", "MIB", "GIB", "regular_file", "read_bytes", "read_text", "read_upto"]

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def _size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def regular_file(path: str | os.PathLike, *, what: str = "file", limit: int | None = None,
                 error: Type[DcpnasError] = DataError) -> int:
    """The size of ``path`` after checking it is a regular file of at most ``limit`` bytes; a missing
    path, a directory, a FIFO, a socket or a device raises ``error`` naming ``what``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {(exc.strerror or str(exc)).lower()}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device")
        raise error(f"{what} {path} is {kind}, not a regular file")
    if limit is not None and st.st_size > limit:
        raise error(f"{what} {path} is {_size(st.st_size)}; a {what} is at most {_size(limit)}")
    return st.st_size


def read_bytes(path: str | os.PathLike, *, what: str = "file", limit: int,
               error: Type[DcpnasError] = DataError) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``; see :func:`regular_file`)."""
    regular_file(path, what=what, limit=limit, error=error)
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO since the stat, open does not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            data = read_upto(f, limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {(exc.strerror or str(exc)).lower()}") from None
    if len(data) > limit:  # it grew since the stat
        raise error(f"{what} {path} is larger than {_size(limit)}")
    return data


CHUNK = 1 << 20


def read_upto(f, n: int) -> bytes:
    """At most ``n`` bytes of ``f``, read in chunks: ``f.read(n)`` reserves all ``n`` bytes up front,
    which a memory limit (``ulimit -v``) refuses for a generous cap even when the file is small."""
    parts, got = [], 0
    while got < n:
        chunk = f.read(min(CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_text(path: str | os.PathLike, *, what: str = "file", limit: int, encoding: str = "utf-8",
              error: Type[DcpnasError] = DataError) -> str:
    """The text of ``path`` (``encoding``, default UTF-8); undecodable bytes raise ``error``."""
    data = read_bytes(path, what=what, limit=limit, error=error)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not {encoding} text (byte {exc.start})") from None

