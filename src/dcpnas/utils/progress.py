"""Progress display: tqdm on a terminal, plain periodic lines elsewhere.

On a terminal a tqdm bar is redrawn in place. In log files, CI and ``| tee`` a bar's carriage returns
pile up, so there the same status text (tqdm's own meter, without the bar) is written as a plain line
at most every ``interval`` seconds and once at the end. Shown on rank 0 only.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

from tqdm import tqdm

from .logging import is_main_process

__all__ = ["Progress", "format_duration"]

# The plain line: tqdm's meter fields without the bar ("search: 100% 4/4 [00:03<00:00, 1.2it/s]").
_PLAIN = "{desc}{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
_PLAIN_NO_TOTAL = "{desc}{n_fmt}{unit} [{elapsed}, {rate_fmt}]"


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``'01:15'``, ``3725`` -> ``'1:02:05'`` (tqdm's format); unknown -> ``'?'``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    return tqdm.format_interval(round(seconds))


def _fmt(value: Any) -> str:
    if hasattr(value, "item") and callable(value.item):  # tensors, numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Progress over ``total`` steps, or over an iterable (its ``len`` is the total when it has one).

    ``with Progress(100, "search") as p: ... p.update(); p.set_postfix(loss=l)`` or
    ``for batch in Progress(loader, "eval"): ...``. ``enabled=False`` (or a rank other than 0) shows
    nothing. ``tty`` says which display is in use.
    """

    def __init__(self, total: int | Iterable[Any] | None = None, desc: str = "", enabled: bool = True, *,
                 stream: TextIO | None = None, interval: float | None = None, unit: str = "it"):
        self.iterable: Iterable[Any] | None = None
        if total is not None and not isinstance(total, int):
            self.iterable = total
            total = len(total) if hasattr(total, "__len__") else None
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and is_main_process()
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        # A terminal redraws cheaply; a log file gets a line every 30 s at most.
        self.interval = interval if interval is not None else (0.1 if self.tty else 30.0)
        self.n = 0
        self.postfix = ""
        self._start = self._last_line = time.monotonic()
        self._closed = False
        self._bar = (tqdm(total=total, desc=desc or None, unit=unit, file=self.stream, mininterval=self.interval,
                          dynamic_ncols=True, leave=True)
                     if self.enabled and self.tty else None)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps (redraws or writes a line when due)."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        if self.total and self.n >= self.total:
            self.close()  # completion is reported even without a `with` block
        elif self.enabled and self._bar is None and time.monotonic() - self._last_line >= self.interval:
            self._line()

    def set_postfix(self, **kv: Any) -> None:
        """Show ``key=value`` items after the counters (floats with 4 significant digits)."""
        self.postfix = " ".join(f"{k}={_fmt(v)}" for k, v in kv.items())
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix, refresh=False)

    def close(self) -> None:
        """Draw the final state; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._line()

    def format(self) -> str:
        """The plain status line."""
        elapsed = time.monotonic() - self._start
        text = tqdm.format_meter(self.n, self.total, elapsed, prefix=f"{self.desc}: " if self.desc else "",
                                 unit=self.unit, bar_format=_PLAIN if self.total else _PLAIN_NO_TOTAL)
        return f"{text} {self.postfix}" if self.postfix else text

    def _line(self) -> None:
        self._last_line = time.monotonic()
        self.stream.write(self.format() + "\n")
        self.stream.flush()

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
