"""1×1 convolutions with stride > 1 as a subsampling followed by a stride-1 1×1 convolution.

oneDNN's strided 1×1 convolution runs its weight-gradient pass through a "reduce to unit stride"
workspace that it writes past on NHWC inputs with fewer channels than the kernel's block
(uxlfoundation/oneDNN#6035: heap corruption, hangs or wrong weight gradients). Subsampling first
computes the same function and never takes that path; it applies on every device, so values and
exported graphs do not depend on where a model runs (docs/METHOD.md#strided-pointwise-convolutions).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

__all__ = ["unit_stride_pointwise"]


def _is_pointwise(weight: torch.Tensor) -> bool:
    if not torch.jit.is_tracing():
        return weight.dim() == 4 and tuple(weight.shape[2:]) == (1, 1)
    # The legacy tracer records shapes as values and warns when one is compared; a module's kernel
    # size is fixed, so the comparison is a constant of the traced graph.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return weight.dim() == 4 and tuple(weight.shape[2:]) == (1, 1)


def unit_stride_pointwise(x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int],
                          padding: tuple[int, int]):
    """``(x', stride', padding')`` with ``conv(x', w, stride', padding') == conv(x, w, stride,
    padding)`` and stride' = 1 when ``w`` is 1×1 (a 1×1 kernel reads one pixel: output pixel (i, j)
    is the padded input's pixel (s·i, s·j)); anything else unchanged."""
    if max(stride) == 1 or not _is_pointwise(weight):
        return x, stride, padding
    if max(padding) > 0:
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    return x[:, :, :: stride[0], :: stride[1]], (1, 1), (0, 0)
