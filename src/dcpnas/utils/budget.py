"""The memory budget: what a network or an array will take, estimated before it is allocated.

Sizes that reach the code from a config (``supernet.C=100000``), a model file's spec or an array's
header would otherwise be found out by the allocator, after minutes of swapping or with the OOM
killer. :func:`check_budget` compares an :class:`Estimate` (parameters with their gradients and
optimiser state, plus activations, in bytes) with the ceiling and refuses, in one line naming the
values, what exceeds it. The estimates count only the large tensors, so they err low: only what
cannot fit is refused.

The ceiling is 80 % of this machine's memory (and of the address-space limit, ``ulimit -v``, when one
is set): the rest is the process itself, its data and the other programs.
``DCPNAS_MEMORY_LIMIT=SIZE`` (``64G``, ``512M``, bytes) states another one, ``DCPNAS_MEMORY_LIMIT=none``
or ``dcpnas --no-memory-limit ...`` lifts it for a machine that has what it takes.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Type

from ..errors import ConfigError, DcpnasError

__all__ = ["Estimate", "network_estimate", "array_bytes", "check_budget", "check_array", "memory_ceiling",
           "unlimited", "ENV"]

ENV = "DCPNAS_MEMORY_LIMIT"
FLOAT = 4                 # bytes of an fp32 value
TRAIN_COPIES = 4          # weights, gradients and two optimiser moments (Adam; SGD keeps fewer)
HEADROOM = 0.8            # of the machine's memory, what one run may plan to take
_DISABLED = False         # set for one command by ``dcpnas --no-memory-limit``


@dataclass(frozen=True)
class Estimate:
    """What ``what`` needs: ``params`` parameters (``copies`` values each) and ``activation_bytes``."""

    what: str
    params: int = 0
    activation_bytes: int = 0
    copies: int = 1

    @property
    def bytes(self) -> int:
        return self.params * FLOAT * self.copies + self.activation_bytes

    def __add__(self, other: "Estimate") -> "Estimate":
        return Estimate(self.what, self.params + other.params, self.activation_bytes + other.activation_bytes,
                        max(self.copies, other.copies))


def _size(n: float) -> str:
    for unit, scale in (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def _count(n: int) -> str:
    if n >= 10 ** 15:
        return f"{n:.2e}"
    for unit, scale in (("T", 10 ** 12), ("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _parse_size(text: str) -> Optional[int]:
    text = text.strip()
    if text.lower() in ("none", "off", "unlimited", "0"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", text, re.IGNORECASE)
    if not m:
        raise ConfigError(f"{ENV}={text[:40]!r} is not a size (e.g. 64G, 512M, or none)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def memory_ceiling() -> tuple[Optional[int], str]:
    """(bytes or None for no limit, where it comes from)."""
    if _DISABLED:
        return None, "--no-memory-limit"
    text = os.environ.get(ENV)
    if text is not None and text.strip():
        return _parse_size(text), ENV
    limits = []
    try:
        limits.append((int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * HEADROOM),
                       "80% of this machine's memory"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append((int(soft * HEADROOM), "80% of the address-space limit (ulimit -v)"))
    except (ImportError, ValueError, OSError):
        pass
    if not limits:
        return None, "unknown"
    return min(limits)


@contextlib.contextmanager
def unlimited(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`check_budget` refuses nothing (``dcpnas --no-memory-limit``)."""
    global _DISABLED
    old, _DISABLED = _DISABLED, _DISABLED or enabled
    try:
        yield
    finally:
        _DISABLED = old


def check_budget(estimate: Estimate, *, hint: str = "", error: Type[DcpnasError] = ConfigError) -> None:
    """Raise ``error`` (one line) when ``estimate`` exceeds the ceiling; ``hint`` names the settings
    that size it."""
    ceiling, source = memory_ceiling()
    if ceiling is None or estimate.bytes <= ceiling:
        return
    parts = []
    if estimate.params:
        parts.append(f"{_count(estimate.params)} parameters")
    if estimate.activation_bytes:
        parts.append(f"{_size(estimate.activation_bytes)} of activations")
    detail = f" ({', '.join(parts)})" if parts else ""
    lower = f"lower {hint} or " if hint else ""
    raise error(f"{estimate.what} needs about {_size(estimate.bytes)}{detail}, more than {source} allows "
                f"({_size(ceiling)}); {lower}set {ENV}=SIZE or pass dcpnas --no-memory-limit on a machine "
                f"that has it")


# -- estimates ------------------------------------------------------------------------------------
#: Parameters of the 8 candidate ops on one supernet edge, per c² and per c (sep convs: two
#: depthwise+pointwise pairs; dilated convs: one pair).
_SUPER_EDGE = (6, 2 * (9 + 25) + 9 + 25)
_SUPER_EDGES, _OPS, _DERIVED_EDGES, _STEPS = 14, 8, 8, 4


def _segments(layers: int, C: int, size: int) -> list[tuple[int, int, int, bool]]:
    """(cells, channels, output side, reduction) for the three stretches of cells (reductions at
    L//3 and 2L//3 double the channels and halve the side), in O(1) for any ``layers``."""
    r1, r2 = layers // 3, 2 * layers // 3
    h1, h2 = -(-size // 2), -(-size // 4)
    out = []
    if r1 > 0:
        out.append((r1, C, size, False))
    out.append((1, 2 * C, h1, True))
    if r2 - r1 - 1 > 0:
        out.append((r2 - r1 - 1, 2 * C, h1, False))
    if r2 != r1:
        out.append((1, 4 * C, h2, True))
    if layers - r2 - 1 > 0:
        out.append((layers - r2 - 1, 4 * C if r2 != r1 else 2 * C, h2, False))
    return out


def network_estimate(what: str, *, C: int, layers: int, image_size: int, in_channels: int = 3,
                     num_classes: int = 10, layout: str = "cifar", batch: int = 1, supernet: bool = False,
                     partial_channels: int = 1, stem_multiplier: int = 3, networks: int = 1,
                     training: bool = True) -> Estimate:
    """A lower estimate of a cell network's memory: parameters of the convolutions and the output of
    every op on every edge (what backward keeps) for ``batch`` images of ``image_size``². ``supernet``:
    the mixed edges of a search (8 ops each, 1/``partial_channels`` of the channels); ``networks``: how
    many such networks live at once (Parent and Child)."""
    C, layers, size = int(C), max(int(layers), 1), max(int(image_size), 1)
    if layout == "imagenet":
        stem_params, stem_act, size = in_channels * C * 9 // 2 + C * C * 9 // 2 + C * C * 9, C * size * size, -(-size // 8)
    else:
        c_stem = stem_multiplier * C
        stem_params, stem_act = in_channels * c_stem * 9, c_stem * size * size
    params, act = stem_params, stem_act
    for cells, c, side, _reduction in _segments(layers, C, size):
        if supernet:
            e = max(c // max(partial_channels, 1), 1)
            cell_params = _SUPER_EDGES * (_SUPER_EDGE[0] * e * e + _SUPER_EDGE[1] * e) + 8 * c * c
            cell_act = _SUPER_EDGES * _OPS * e * side * side
        else:
            cell_params = _DERIVED_EDGES * c * c + 8 * c * c
            cell_act = (_DERIVED_EDGES + _STEPS) * c * side * side
        params += cells * cell_params
        act += cells * cell_act
    params += _STEPS * 4 * C * num_classes
    acts = act * batch * FLOAT * (1 if training else 0) + (0 if training else 2 * _peak(C, size, batch))
    return Estimate(what, params * networks, acts * networks, TRAIN_COPIES if training else 1)


def _peak(C: int, size: int, batch: int) -> int:
    """Inference keeps a few feature maps alive at a time, not all: about a cell's output."""
    return _STEPS * 4 * C * size * size * batch * FLOAT


def array_bytes(shape, itemsize: int) -> int:
    return math.prod(int(s) for s in shape) * int(itemsize)


def check_array(what: str, shape, itemsize: int, *, error: Type[DcpnasError]) -> None:
    """Refuse an array (``shape`` from a file header) that would not fit in memory."""
    check_budget(Estimate(what, activation_bytes=array_bytes(shape, itemsize)), error=error)
