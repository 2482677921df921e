"""JSON-lines metric logs and a rank-0 console print.

Under torchrun every process runs the same code; only rank 0 writes logs and prints, so files and
terminals get one copy. The rank comes from torch.distributed when it is initialised, else ``$RANK``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from ..errors import WriteError
from .io import os_reason, to_jsonable

__all__ = ["get_rank", "is_main_process", "JsonlLogger", "console", "read_jsonl"]


def get_rank() -> int:
    """This process's global rank (0 when not distributed)."""
    # Look torch up in sys.modules instead of importing it: if torch.distributed was never imported, no
    # process group can exist, and plain scripts keep their fast start.
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """True on rank 0 (and in a single-process run)."""
    return get_rank() == 0


def console(msg: str, *, file: TextIO | None = None) -> None:
    """Print ``msg`` (flushed) on rank 0 only."""
    if is_main_process():
        print(msg, file=file if file is not None else sys.stdout, flush=True)


class JsonlLogger:
    """Append one JSON object per line to ``path``, flushed per line (rank 0 only; a no-op elsewhere).

    Tensors and numpy values are converted to Python numbers / lists. Use as a context manager or call
    :meth:`close`. ``logger.log({"step": 1}, loss=loss_tensor)`` writes ``{"step": 1, "loss": 0.5}``.
    """

    def __init__(self, path: str | os.PathLike, *, enabled: bool | None = None):
        self.path = Path(path)
        self.enabled = is_main_process() if enabled is None else enabled
        self._file: TextIO | None = None

    def log(self, record: dict[str, Any] | None = None, **fields: Any) -> None:
        """Write ``record`` updated by ``fields`` as one line."""
        if not self.enabled:
            return
        data = dict(record or {})
        data.update(fields)
        line = json.dumps(to_jsonable(data), separators=(", ", ": "))
        try:
            if self._file is None:
                # Opened on first use, in append mode: a resumed run continues the same log.
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()  # a crash (or tail -f) sees every finished line
        except OSError as exc:
            raise WriteError(self.path, os_reason(exc), "the lines before this one are kept") from None

    def close(self) -> None:
        """Close the file (further :meth:`log` calls reopen it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (crash mid-write) is skipped."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                return
            raise
