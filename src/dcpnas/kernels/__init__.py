"""Faster CPU paths for torch ops whose CPU kernels are slow at this project's shapes.

Each module keeps the op's values (up to float rounding), parameters and state dict, falls back to
the native op wherever the fast path does not apply, and supports double backward (the curvature
paths take it); tests/test_kernels.py checks each against torch and finite differences.
"""

from .batchnorm import NARROW_CHANNELS, BatchNorm2d
from .depthwise import Conv2d, conv2d
from .policy import fast_paths_enabled, native_kernels

__all__ = ["NARROW_CHANNELS", "BatchNorm2d", "Conv2d", "conv2d", "fast_paths_enabled", "native_kernels"]
