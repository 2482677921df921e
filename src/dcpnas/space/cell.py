"""DARTS cells: 2 input nodes, 4 intermediate nodes, 14 edges; normal or reduction.

``SearchCell`` mixes every candidate op on every edge; ``DerivedCell`` keeps the 2 chosen inputs of
each node from a genotype.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .mixed import MixedOp
from .ops import FactorizedReduce, ReLUConvBN
from .primitives import OpStyle, build_op

STEPS = 4
NUM_EDGES = sum(2 + i for i in range(STEPS))  # 14


def edge_index(node: int, input_node: int) -> int:
    """Row of α for the edge input_node → node (node in 0..3 counts intermediate nodes)."""
    return sum(2 + i for i in range(node)) + input_node


class _CellInputs(nn.Module):
    """Bring both cell inputs to C channels (and the older one to the current resolution)."""

    def __init__(self, C_pp: int, C_p: int, C: int, reduction_prev: bool, style: OpStyle):
        super().__init__()
        self.preprocess0 = (FactorizedReduce(C_pp, C, style) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, style))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, style)

    def forward(self, s0, s1):
        return self.preprocess0(s0), self.preprocess1(s1)


def edge_weights(beta: torch.Tensor) -> torch.Tensor:
    """PC-DARTS edge normalisation: softmax of β over the incoming edges of each node (NUM_EDGES)."""
    parts, start = [], 0
    for node in range(STEPS):
        parts.append(torch.softmax(beta[start:start + node + 2], dim=-1))
        start += node + 2
    return torch.cat(parts)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a path with probability drop_prob (scaled to keep the expectation)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class SearchCell(nn.Module):
    def __init__(self, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool,
                 style: OpStyle, partial: int = 1):
        super().__init__()
        self.reduction = reduction
        self.inputs = _CellInputs(C_pp, C_p, C, reduction_prev, style)
        self.edges = nn.ModuleList()
        for node in range(STEPS):
            for j in range(2 + node):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(C, stride, style, partial))
        self.multiplier = STEPS

    def forward(self, s0, s1, weights: torch.Tensor, path=None, edges: torch.Tensor | None = None):
        """Mix every op by ``weights`` (edges × ops), or run only ``path[e]`` on edge e.

        edges: per-edge weights (``edge_weights(β)``) that scale each edge in its node's sum
        (PC-DARTS edge normalisation), or None.
        """
        def mixed(e: int, h: torch.Tensor) -> torch.Tensor:
            y = self.edges[e](h, weights[e])
            return y if edges is None else edges[e] * y

        states = list(self.inputs(s0, s1))
        offset = 0
        for node in range(STEPS):
            if path is None:
                s = sum(mixed(offset + j, h) for j, h in enumerate(states))
            else:
                s = sum(self.edges[offset + j].forward_path(h, int(path[offset + j]))
                        for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier:], dim=1)


class DerivedCell(nn.Module):
    """A discrete cell: each intermediate node sums two chosen ops of earlier nodes."""

    def __init__(self, cell_genes, concat, C_pp: int, C_p: int, C: int, reduction: bool,
                 reduction_prev: bool, style: OpStyle):
        super().__init__()
        self.reduction = reduction
        self.inputs = _CellInputs(C_pp, C_p, C, reduction_prev, style)
        self.concat = list(concat)
        self.multiplier = len(self.concat)
        self.genes = [tuple(g) for g in cell_genes]  # flat: 2 (op, input) pairs per node
        self.ops = nn.ModuleList()
        for name, index in self.genes:
            stride = 2 if reduction and index < 2 else 1
            self.ops.append(build_op(name, C, stride, style))
        self.drop_prob = 0.0

    def forward(self, s0, s1):
        states = list(self.inputs(s0, s1))
        for node in range(len(self.genes) // 2):
            total = 0
            for k in (2 * node, 2 * node + 1):
                name, index = self.genes[k]
                h = self.ops[k](states[index])
                if self.training and self.drop_prob > 0 and name != "skip_connect":
                    h = drop_path(h, self.drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)
