"""utils.allocator: the mallopt settings take effect (glibc's own counters say where a block went)."""

from __future__ import annotations

import ctypes

import pytest
import torch

from dcpnas.utils import allocator


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _mmapped_blocks() -> int:
    libc = allocator._glibc()
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblks


needs_glibc = pytest.mark.skipif(allocator._glibc() is None or not hasattr(allocator._glibc(), "mallinfo2"),
                                 reason="glibc ≥ 2.33 only")


@needs_glibc
def test_tuned_allocator_keeps_a_16_mib_buffer_in_the_heap():
    try:
        assert allocator.restore_default_allocator()
        before = _mmapped_blocks()
        buf = torch.empty(4 << 20)                     # 16 MiB: above 128 KiB, below 32 MiB
        assert _mmapped_blocks() == before + 1         # default threshold: its own mmap
        del buf
        assert allocator.tune_cpu_allocator()
        before = _mmapped_blocks()
        buf = torch.empty(4 << 20)
        assert _mmapped_blocks() == before             # tuned: served from the heap
        del buf
    finally:
        allocator.tune_cpu_allocator()               # as the dcpnas command runs


@needs_glibc
def test_environment_opt_out(monkeypatch):
    monkeypatch.setenv("DCPNAS_MALLOC", "default")
    assert allocator.tune_cpu_allocator() is False


def test_tune_is_harmless_where_unsupported(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.tune_cpu_allocator() is False
    assert allocator.restore_default_allocator() is False
