"""The DARTS mixed operation: Σ_m softmax(α)_m · o_m(x) over one edge (Eq. 4.28)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .primitives import NONE_INDEX, PRIMITIVES, OpStyle, build_op


class MixedOp(nn.Module):
    """All candidate ops of one edge, mixed by architecture weights.

    The ``none`` op is not built and never computed: its output is zero, so it only takes part
    through the softmax normalisation of the weights.
    """

    def __init__(self, channels: int, stride: int, style: OpStyle):
        super().__init__()
        self.ops = nn.ModuleList(build_op(name, channels, stride, style)
                                 for name in PRIMITIVES if name != "none")
        self._indices = [i for i in range(len(PRIMITIVES)) if i != NONE_INDEX]
        self.stride = stride

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for i, op in zip(self._indices, self.ops):
            y = weights[i] * op(x)
            out = y if out is None else out + y
        return out

    def forward_path(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Only candidate ``PRIMITIVES[index]`` (single-path sampling); ``none`` gives zeros."""
        if index == NONE_INDEX:
            return x[:, :, :: self.stride, :: self.stride].mul(0.0)
        return self.ops[self._indices.index(index)](x)

    def op_for(self, name: str) -> nn.Module:
        """The module of candidate ``name`` on this edge (``none`` has none)."""
        idx = PRIMITIVES.index(name)
        return self.ops[self._indices.index(idx)]
