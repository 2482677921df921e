"""JSON-lines metric logs and a rank-0 console print.

Under torchrun every process runs the same code; only rank 0 writes logs and prints, so files and
terminals get one copy. The rank comes from torch.distributed when it is initialised, else ``$RANK``.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from ..errors import DataError, WriteError
from .io import atomic_write_bytes, os_reason, to_jsonable

__all__ = ["get_rank", "is_main_process", "JsonlLogger", "console", "read_jsonl", "ascii_fallback", "to_ascii",
           "rewind_jsonl"]


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


#: ASCII spellings of the symbols dcpnas prints, for a terminal that cannot show them.
_ASCII = {"±": "+/-", "→": "->", "←": "<-", "×": "x", "≈": "~", "≥": ">=", "≤": "<=", "≠": "!=", "‖": "||",
          "·": "*", "—": "--", "–": "-", "…": "...", "²": "^2", "³": "^3", "⁻": "^-", "¹": "1", "₀": "0",
          "₁": "1", "₂": "2", "∂": "d", "∇": "grad ", "√": "sqrt", "∞": "inf", "°": " deg", "•": "*",
          "⊙": "(.)", "‘": "'", "’": "'", "“": '"', "”": '"', "µ": "mu", "█": "#", "▏": "|", "▎": "|",
          "▍": "|", "▌": "|", "▋": "|", "▊": "|", "▉": "|"}
_HANDLER = "dcpnas-ascii"


def to_ascii(text: str) -> str:
    """``text`` with every non-ASCII character spelled in ASCII: the table above, Greek letters by
    name (α -> alpha), accents dropped (ŵ -> w), anything else '?'."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
        elif ch in _ASCII:
            out.append(_ASCII[ch])
        elif unicodedata.combining(ch):
            continue                     # the hat of α̂, the accent of é
        else:
            name = unicodedata.name(ch, "")
            if name.startswith("GREEK "):
                word = name.split()[-1].lower().replace("lamda", "lambda")
                out.append(word.capitalize() if "CAPITAL" in name else word)
            else:
                base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
                out.append(base or "?")
    return "".join(out)


def _ascii_errors(exc: UnicodeError):
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return to_ascii(exc.object[exc.start:exc.end]), exc.end


codecs.register_error(_HANDLER, _ascii_errors)


def ascii_fallback(streams=None) -> None:
    """Make stdout and stderr spell what their encoding cannot show in ASCII (``PYTHONIOENCODING=ascii``,
    a C locale, a batch system's log) instead of raising UnicodeEncodeError mid-run. One policy for
    every print: the streams themselves, so no caller has to think of it."""
    for stream in streams if streams is not None else (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        if not encoding or not hasattr(stream, "reconfigure"):
            continue
        try:
            "α±→".encode(encoding)
            continue                     # it shows them: leave it alone
        except (UnicodeEncodeError, LookupError):
            pass
        try:
            stream.reconfigure(errors=_HANDLER)
        except (ValueError, OSError, AttributeError):
            pass


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


def rewind_jsonl(path: str | os.PathLike, keep: Callable[[list[dict]], int], *, limit: int = 1 << 30) -> int:
    """Cut the JSON-lines log ``path`` back to its first ``keep(records)`` records, for a run resumed
    from a checkpoint older than the log's end (killed between logging an epoch and saving it): the
    records after it are written again, and would otherwise appear twice. A torn last line (a crash
    mid-write) is dropped; any other damaged line raises :class:`DataError` naming it, and nothing is
    changed. Returns how many lines were removed."""
    path = Path(path)
    if not path.is_file():
        return 0
    from .bounded import read_bytes

    raw = read_bytes(path, what="log", limit=limit)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    records, kept_lines = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError, RecursionError):
            if i == len(lines) - 1 and not raw.endswith(b"\n"):
                break                    # torn by a crash: the records before it are whole
            raise DataError(f"{path}: line {i + 1} is not a JSON record (damaged?); repair or move the "
                            f"log aside to resume") from None
        records.append(record)
        kept_lines.append(line)
    n = max(0, min(len(records), keep(records)))
    removed = len(lines) - n
    if removed:
        atomic_write_bytes(path, b"".join(line + b"\n" for line in kept_lines[:n]))
    return removed
