"""The 8 candidate operations (book §4.4, Fig. 4.13; docs/METHOD.md#eq-4-28) and the op factory.

``none`` is last, as in the authors' code, so the genotype parser can drop it by slicing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from . import ops

PRIMITIVES: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "none",
)
NONE_INDEX = PRIMITIVES.index("none")
PARAMETRIC = frozenset({"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"})

SCOPES = ("official", "book")


@dataclass(frozen=True)
class OpStyle:
    """How ops are built.

    binary: 1-bit ops (the Child) or real-valued DARTS ops (the Parent / real networks).
    scope: which convs of a 1-bit op binarise their input activations (docs/METHOD.md#decision-scope):
      ``official`` — only the 1×1 pointwise convs of separable/dilated ops (the authors' model);
      ``book`` — every conv of the separable/dilated ops (depthwise too).
      Preprocessing and factorised-reduce convs keep real activations in both scopes; stem and
      classifier are always real.
    affine: whether BatchNorm layers are affine (off in the search supernet, as DARTS does).
    """

    binary: bool = False
    scope: str = "official"
    affine: bool = True

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"unknown binarisation scope {self.scope!r}; expected one of {SCOPES}")


OpBuilder = Callable[[int, int, OpStyle], nn.Module]

_BUILDERS: dict[str, OpBuilder] = {
    "none": lambda C, stride, style: ops.Zero(stride),
    "max_pool_3x3": lambda C, stride, style: ops.Pool("max", C, stride, style),
    "avg_pool_3x3": lambda C, stride, style: ops.Pool("avg", C, stride, style),
    "skip_connect": lambda C, stride, style: (ops.Identity() if stride == 1
                                              else ops.FactorizedReduce(C, C, style)),
    "sep_conv_3x3": lambda C, stride, style: ops.SepConv(C, C, 3, stride, 1, style),
    "sep_conv_5x5": lambda C, stride, style: ops.SepConv(C, C, 5, stride, 2, style),
    "dil_conv_3x3": lambda C, stride, style: ops.DilConv(C, C, 3, stride, 2, 2, style),
    "dil_conv_5x5": lambda C, stride, style: ops.DilConv(C, C, 5, stride, 4, 2, style),
}


def build_op(name: str, channels: int, stride: int, style: OpStyle) -> nn.Module:
    """Build the candidate operation ``name`` (real or 1-bit as ``style`` says)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}; expected one of {PRIMITIVES}") from None
    return builder(channels, stride, style)
