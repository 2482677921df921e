"""Which code made a run: a fingerprint of the package's own source files.

The version string does not change while the package is developed, so a study that reuses finished
trials could mix results of different code unnoticed; every run directory's marker records this
fingerprint instead (``utils.rundir``), and a study summary says when its trials differ in it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["code_fingerprint"]

_PACKAGE = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=None)
def code_fingerprint(root: Path = _PACKAGE) -> str:
    """First 16 hex digits of SHA-256 over the relative paths and bytes of every ``*.py`` under
    ``root`` (default: the dcpnas package), in sorted order."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]
