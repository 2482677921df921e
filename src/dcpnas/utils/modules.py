"""Submodules of a type, found once per network.

A 5-cell C 8 supernet holds ~5000 modules; walking them for its BatchNorms (every teacher forward
freezes their statistics) or its binary convs (every Child weight step's L_R) several times a step
costs more than the work it serves. The networks of this package are not edited after construction, so each
walk is done once and kept on the network.
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["forget_modules_of_type", "modules_of_type"]

_CACHE = "_dcpnas_modules_of_type"


def modules_of_type(net: nn.Module, cls: type | tuple) -> tuple[nn.Module, ...]:
    """Every module of ``net`` (itself included) that is an instance of ``cls``, in ``modules()``
    order. Cached on ``net`` (a plain attribute: not in the state dict; ``copy.deepcopy`` maps it
    to the copy's modules)."""
    cache = net.__dict__.get(_CACHE)
    if cache is None:
        cache = net.__dict__[_CACHE] = {}
    found = cache.get(cls)
    if found is None:
        found = cache[cls] = tuple(m for m in net.modules() if isinstance(m, cls))
    return found


def forget_modules_of_type(net: nn.Module) -> None:
    """Drop the cached walks of ``net`` and of every submodule, for code that edits a network after
    construction (the layout ablations of ``benchmarks/bench_op_layout.py``)."""
    for m in net.modules():
        m.__dict__.pop(_CACHE, None)
