"""glibc malloc settings for a process that trains on CPU.

A CPU training step allocates and frees the same large activation buffers every step. glibc's
defaults serve blocks above the (dynamic) mmap threshold with fresh ``mmap`` calls and return freed
heap tops to the OS above 128 KiB, so each step page-faults its buffers in again (zero-filled by the
kernel). Keeping them in the heap — mmap threshold 32 MiB, trim threshold 1 GiB, 64 MiB top pad —
takes a Fashion-MNIST 1-bit training step from tens of thousands of minor page faults to a few, and
single ops with fresh temporaries several times faster (``benchmarks/bench_train_step.py`` and
``bench_kernels.py --malloc default`` show both; benchmarks/README.md).
The price is resident memory: up to the trim threshold of freed memory stays with the process.

``dcpnas`` calls :func:`tune_cpu_allocator` once at start-up (``cli/main.py``); library users may call
it themselves. ``DCPNAS_MALLOC=default`` in the environment leaves glibc's settings alone. Elsewhere
than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

__all__ = ["ALLOCATOR_SETTINGS", "tune_cpu_allocator", "restore_default_allocator"]

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

#: (parameter, value) pairs set by :func:`tune_cpu_allocator`.
ALLOCATOR_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
# glibc's documented defaults (the dynamic mmap threshold starts at 128 KiB; setting it turns the
# dynamic adjustment off, which restoring cannot turn back on).
_DEFAULTS = ((_M_MMAP_THRESHOLD, 128 << 10), (_M_TRIM_THRESHOLD, 128 << 10), (_M_TOP_PAD, 128 << 10))


@functools.cache
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has it (musl also exports mallopt, as a no-op)
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return libc


def _apply(settings) -> bool:
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def tune_cpu_allocator() -> bool:
    """Set :data:`ALLOCATOR_SETTINGS` with ``mallopt``; True when glibc accepted every one."""
    if os.environ.get("DCPNAS_MALLOC", "").strip().lower() == "default":
        return False
    return _apply(ALLOCATOR_SETTINGS)


def restore_default_allocator() -> bool:
    """Back to glibc's default thresholds (for A/B measurements) and hand freed memory back."""
    ok = _apply(_DEFAULTS)
    if ok:
        _glibc().malloc_trim(0)
    return ok
