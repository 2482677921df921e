"""Ranges of values that several configs share, checked by their ``validate`` hooks before anything runs.

* seeds: NumPy's and torch's generators take 0..2**63-1 (torch: a signed 64-bit integer; a larger or
  negative seed fails inside ``manual_seed``, after the run directory was written);
* network sizes: at most MAX_C channels and MAX_LAYERS cells, in configs and model files alike
  (building 10⁵ cells takes hours before any memory runs out; the memory itself is utils/budget.py's);
* image sizes (``data.resolution``): the two reduction cells halve the image twice, so below 4 pixels
  the later cells see a single pixel and the search or training measures nothing.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["MAX_SEED", "MAX_C", "MAX_LAYERS", "MIN_RESOLUTION", "check_seed", "check_network_size",
           "check_resolution", "short_int"]

MAX_SEED = 2 ** 63 - 1
MAX_C, MAX_LAYERS = 4096, 256
MIN_RESOLUTION = 4


def short_int(value: int) -> str:
    """``value`` for a one-line message: a number of hundreds of digits is named by its length."""
    if abs(value) < 10 ** 30:
        return str(value)
    digits = int(value.bit_length() * 0.30103) + 1          # str() of a huge int is slow, even refused
    return f"{'-' if value < 0 else ''}a number of about {digits} digits"


def check_seed(value: int, key: str = "seed") -> None:
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{key} must be in 0..2**63-1 (the range of NumPy's and torch's generators), "
                          f"got {short_int(value)}")


def check_network_size(prefix: str, C, layers) -> None:
    """``prefix.C`` and ``prefix.layers`` (None: from a named size) within MAX_C and MAX_LAYERS."""
    for key, value, top in (("C", C, MAX_C), ("layers", layers, MAX_LAYERS)):
        if value is not None and value > top:
            raise ConfigError(f"{prefix}.{key} must be at most {top}, got {short_int(value)}")


def check_resolution(value: int, key: str = "resolution") -> None:
    if value != 0 and value < MIN_RESOLUTION:
        raise ConfigError(f"{key} must be 0 (the images' own size) or at least {MIN_RESOLUTION} (the reduction "
                          f"cells halve it twice), got {value}")
