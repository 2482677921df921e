"""A small progress display (tqdm is not a dependency).

On a terminal: one line redrawn in place (``\\r``) with a bar, count, rate and ETA. Elsewhere (log
files, CI, ``| tee``): a plain line at most every ``interval`` seconds and one at the end, so logs stay
readable instead of filling up with carriage returns. Shown on rank 0 only.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

from .logging import is_main_process

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75`` -> ``'01:15'``, ``3725`` -> ``'1:02:05'``; unknown -> ``'?'``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _fmt(value: Any) -> str:
    if hasattr(value, "item") and callable(value.item):  # tensors, numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """Progress over ``total`` steps, or over an iterable (``total`` may be one: its ``len`` is used).

    ``with Progress(100, "search") as p: ... p.update(); p.set_postfix(loss=l)`` or
    ``for batch in Progress(loader, "eval"): ...``. ``enabled=False`` (or a rank other than 0) shows nothing.
    """

    def __init__(
        self,
        total: int | Iterable[Any] | None = None,
        desc: str = "",
        enabled: bool = True,
        *,
        stream: TextIO | None = None,
        interval: float | None = None,
        unit: str = "it",
        width: int = 24,
    ):
        self.iterable: Iterable[Any] | None = None
        if total is not None and not isinstance(total, int):
            self.iterable = total
            try:
                total = len(total)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.unit = unit
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and is_main_process()
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        # A terminal redraws cheaply; a log file gets a line every 30 s at most.
        self.interval = interval if interval is not None else (0.1 if self.tty else 30.0)
        self.n = 0
        self.postfix: dict[str, str] = {}
        self.start = time.monotonic()
        # A terminal shows the line from the first step on; a log file waits `interval` for its first line.
        self._last_draw = self.start - self.interval if self.tty else self.start
        self._closed = False
        self._line_len = 0

    # -- counting -------------------------------------------------------------------------------------

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps (redraws when due)."""
        self.n += n
        if self.total and self.n >= self.total:
            self.close()  # completion is reported even without a `with` block
        elif self.enabled:
            now = time.monotonic()
            if now - self._last_draw >= self.interval:
                self._draw(now)

    def set_postfix(self, **kv: Any) -> None:
        """Show ``key=value`` items after the counters (floats with 4 significant digits)."""
        self.postfix = {k: _fmt(v) for k, v in kv.items()}

    def close(self) -> None:
        """Draw the final state (ends the terminal line); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(time.monotonic(), final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("Progress(total=int) is not iterable; pass the iterable itself")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    # -- rendering ------------------------------------------------------------------------------------

    def format(self, now: float | None = None) -> str:
        """The status text (without bar on non-terminals)."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        # Slow steps (a search epoch) read better as seconds per step.
        speed = f"{rate:.2f}{self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.2f}s/{self.unit}"
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.total:
            frac = min(self.n / self.total, 1.0)
            remaining = (self.total - self.n) / rate if rate > 0 else float("inf")
            if self.tty:
                filled = int(frac * self.width)
                parts.append(f"{frac:4.0%} |{'#' * filled}{'.' * (self.width - filled)}| ")
            else:
                parts.append(f"{frac:4.0%} ")
            parts.append(f"{self.n}/{self.total} ")
            parts.append(f"[{format_duration(elapsed)}<{format_duration(remaining)}, {speed}]")
        else:
            parts.append(f"{self.n}{self.unit} [{format_duration(elapsed)}, {speed}]")
        if self.postfix:
            parts.append(" " + " ".join(f"{k}={v}" for k, v in self.postfix.items()))
        return "".join(parts)

    def _draw(self, now: float, final: bool = False) -> None:
        self._last_draw = now
        text = self.format(now)
        if self.tty:
            # Pad over the previous, possibly longer, line instead of relying on ANSI clear codes.
            pad = " " * max(self._line_len - len(text), 0)
            self._line_len = len(text)
            self.stream.write("\r" + text + pad + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
