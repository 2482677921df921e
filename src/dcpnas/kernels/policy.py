"""One switch for the fast paths of this package: on by default; ``native_kernels()`` turns them
off (A/B benchmarks, and the equality tests that compare against torch's own kernels)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

__all__ = ["fast_paths_enabled", "native_kernels"]

_FAST = [True]


def fast_paths_enabled() -> bool:
    """On unless ``native_kernels()`` is active, a tracer (TorchScript, the legacy ONNX exporter)
    records the graph (an exported graph holds torch's own ops, not an autograd.Function),
    ``torch.compile`` traces it (the compiler fuses torch's own ops itself), or a ``torch.func``
    transform (vmap, grad, jvp, jacrev, ...) is active: the fast paths' Functions save state on
    ``ctx`` in ``forward``, which functorch refuses, so they step aside for torch's own ops."""
    import torch
    return (_FAST[0] and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and torch._C._functorch.maybe_current_level() is None)


@contextmanager
def native_kernels() -> Iterator[None]:
    """Run torch's native kernels everywhere inside the block."""
    saved = _FAST[0]
    _FAST[0] = False
    try:
        yield
    finally:
        _FAST[0] = saved


def channels_last_or_none(t) -> "bool | None":
    """Whether ``t`` is channels-last contiguous; None where torch cannot say: inside ``vmap``
    (``torch.autograd.functional.jacobian(vectorize=True)`` runs backwards under it), where the
    fast paths hand over to the native backward."""
    import torch
    try:
        return t.is_contiguous(memory_format=torch.channels_last)
    except RuntimeError:
        return None
