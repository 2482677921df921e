"""Network fetches with short timeouts (offline must fail fast, never hang), atomic writes, safe untar."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError

TIMEOUT_S = 15.0  # per connect / per read; urllib applies it to each socket operation


def download_file(url: str, dest: str | os.PathLike, *, md5: str | None = None,
                  timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` via a temp file in the same folder + rename (no half-written files)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.md5()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "dcpnas"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise DataError(f"download of {url} is corrupt: md5 {digest.hexdigest()} != expected {md5}")
        os.replace(tmp, dest)
    except DataError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:  # timeouts are OSError
        reason = getattr(e, "reason", None) or e
        raise DataError(f"download of {url} failed: {reason}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, top: str) -> Path:
    """Extract folder ``top`` from a tar archive into ``dest``, refusing links and paths leaving ``top``.

    Extracts into a temp folder first and renames, so an interrupted extraction leaves nothing that looks
    like a complete dataset.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=dest))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if (Path(m.name).is_absolute() or ".." in parts or not parts or parts[0] != top
                        or not (m.isfile() or m.isdir())):
                    raise DataError(f"refusing to extract {archive}: unexpected member {m.name!r}")
            # filter="data" (Python >= 3.11.4/3.12) re-checks the same things inside tarfile itself.
            try:
                tar.extractall(tmp, members=members, filter="data")
            except TypeError:
                tar.extractall(tmp, members=members)
        target = dest / top
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / top, target)
        return target
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot extract {archive}: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
