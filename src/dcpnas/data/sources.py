"""Where datasets are looked for: --data-dir, then $DCPNAS_DATA, then the user cache (then system dirs)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DCPNAS_DATA"


def cache_root() -> Path:
    """``~/.cache/dcpnas``: where downloads go. Resolved per call so a changed $HOME is honoured."""
    return Path(os.path.expanduser("~")) / ".cache" / "dcpnas"


def candidate_dirs(data_dir: str | os.PathLike | None, subdir: str,
                   system_dirs: tuple[str | os.PathLike, ...] = ()) -> list[Path]:
    """Directories to try, in priority order, without duplicates.

    Each user-given root is tried as-is and with ``subdir`` appended, so both ``--data-dir ~/data`` and
    ``--data-dir ~/data/fashion-mnist`` work.
    """
    out: list[Path] = []
    roots = [data_dir] if data_dir is not None else []
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(env)
    for root in roots:
        root = Path(os.path.expanduser(str(root)))
        out += [root, root / subdir]
    out.append(cache_root() / subdir)
    out += [Path(d) for d in system_dirs]
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def describe(tried: list[tuple[Path, str]]) -> str:
    """'a (missing), b (incomplete: ...)' for the not-found message."""
    return "; ".join(f"{p} ({why})" for p, why in tried)
