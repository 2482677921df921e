"""The search supernet: one class builds the real-valued Parent or the 1-bit Child.

Architecture parameters α (normal and reduce, each ``NUM_EDGES × len(PRIMITIVES)``) are registered
parameters, so DistributedDataParallel broadcasts them with the weights; ``arch_parameters()`` and
``weight_parameters()`` keep the two groups apart for their optimisers. With PC-DARTS's edge
normalisation ``arch_parameters()`` also holds β (normal and reduce, each ``NUM_EDGES``), after the
two α: every list-generic step (gradients, the tangent, D, the curvature product, Adam, inheritance)
treats them alike; what is defined per op column (the decoupled backtrack, the entropy of α, the
genotype's op choice) reads ``op_alphas(...)``, the first two.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..binary import BinaryConv2d
from .cell import NUM_EDGES, SearchCell, edge_weights
from .macro import MacroNet
from .primitives import PRIMITIVES, OpStyle

KINDS = ("parent", "child")
ARCH_NAMES = ("alpha_normal", "alpha_reduce")
EDGE_NAMES = ("beta_normal", "beta_reduce")


def op_alphas(arch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The α tensors (edges × ops) of an ``arch_parameters()``-ordered list; β, if any, follow them."""
    return list(arch[:len(ARCH_NAMES)])


class Supernet(MacroNet):
    """DARTS supernet over the 8 DCP-NAS operations.

    kind: ``parent`` (real weights and activations) or ``child`` (1-bit ops, see ``OpStyle``).
    scope: binarisation scope of the Child (``official`` or ``book``).
    partial_channels: K of PC-DARTS's partial channel connection (1: off; see ``MixedOp``).
    edge_normalization: PC-DARTS's β: each node sums its incoming edges weighted by a softmax of
      β over them (``edge_weights``); the genotype ranks edges by softmax(α) × that weight.
    """

    def __init__(self, kind: str = "parent", *, in_channels: int = 3, num_classes: int = 10,
                 C: int = 16, layers: int = 8, layout: str = "cifar", scope: str = "official",
                 stem_multiplier: int = 3, alpha_init_std: float = 1e-3,
                 partial_channels: int = 1, edge_normalization: bool = False):
        if kind not in KINDS:
            raise ValueError(f"unknown supernet kind {kind!r}; expected one of {KINDS}")
        style = OpStyle(binary=(kind == "child"), scope=scope, affine=False)

        def make_cell(C_pp, C_p, C_cur, reduction, reduction_prev):
            return SearchCell(C_pp, C_p, C_cur, reduction, reduction_prev, style,
                              partial_channels)

        super().__init__(layout, in_channels, num_classes, C, layers, make_cell, stem_multiplier)
        self.kind = kind
        self.style = style
        shape = (NUM_EDGES, len(PRIMITIVES))
        self.alpha_normal = nn.Parameter(alpha_init_std * torch.randn(shape))
        self.alpha_reduce = nn.Parameter(alpha_init_std * torch.randn(shape))
        self.edge_normalization = bool(edge_normalization)
        if self.edge_normalization:
            self.beta_normal = nn.Parameter(alpha_init_std * torch.randn(NUM_EDGES))
            self.beta_reduce = nn.Parameter(alpha_init_std * torch.randn(NUM_EDGES))

    # -- parameter groups -------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """[α_normal, α_reduce], then [β_normal, β_reduce] with edge normalisation."""
        names = ARCH_NAMES + (EDGE_NAMES if self.edge_normalization else ())
        return [getattr(self, n) for n in names]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except α (conv weights ŵ, scales β, BN, PReLU, classifier)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    @torch.no_grad()
    def load_arch(self, alphas: Sequence[torch.Tensor]) -> None:
        """Architecture inheritance (α̂ ← α or α ← α̂): copy values, keep this net's tensors."""
        for dst, src in zip(self.arch_parameters(), alphas):
            dst.copy_(src.to(dst.device, dst.dtype))

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, alphas: Optional[Sequence[torch.Tensor]] = None,
                paths: Optional[Sequence[Sequence[int]]] = None):
        """Logits of the supernet; ``alphas`` overrides the registered α (for functional use).

        ``paths`` = (normal, reduce), each ``NUM_EDGES`` indices into PRIMITIVES: a single-path
        forward that computes only the chosen op of every edge, unweighted (``none`` = no edge);
        α is not used then (CP-NAS sampling, random search).
        """
        if paths is not None:
            p_normal, p_reduce = paths
            s0, s1 = self.stems(x)
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, None, p_reduce if cell.reduction else p_normal)
            return self.head(s1)
        arch = list(alphas) if alphas is not None else self.arch_parameters()
        if len(arch) != len(self.arch_parameters()):
            raise ValueError(f"expected {len(self.arch_parameters())} architecture tensors, got {len(arch)}")
        w = [F.softmax(a, dim=-1) for a in arch[:2]]                       # normal, reduce
        e = [edge_weights(b) for b in arch[2:]] if len(arch) > 2 else [None, None]
        s0, s1 = self.stems(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w[cell.reduction], edges=e[cell.reduction])
        return self.head(s1)

    # -- quantities the search reads ----------------------------------------------------------
    def op_weight_sq_norms(self) -> list[torch.Tensor]:
        """R(w) = ‖w‖² of each (edge, op), summed over the cells of each type (Eq. 4.53).

        For the Child the reconstructed weights β∘sign(ŵ) are measured (book p.115), as
        ‖β∘sign(ŵ)‖² = fan-in · Σ_o β_o² (sign² = 1). Parameter-free ops get 0. Returns
        [R_normal, R_reduce], each ``NUM_EDGES × len(PRIMITIVES)``. One flat pass over every conv:
        per-conv ops would cost more than the arithmetic.
        """
        dev, dtype = self.alpha_normal.device, self.alpha_normal.dtype
        out = torch.zeros(2 * NUM_EDGES * len(PRIMITIVES), device=dev, dtype=dtype)
        plan = self._conv_slots()
        if plan:
            with torch.no_grad():
                tensors, scales, slots = [], [], []
                for conv, slot in plan:
                    if isinstance(conv, BinaryConv2d) and conv.binary_weights:
                        tensors.append(conv.beta)
                        scales.append(float(conv.weight.numel() // conv.out_channels))
                    else:
                        tensors.append(conv.weight.reshape(-1))
                        scales.append(1.0)
                    slots.append(slot)
                sizes = torch.tensor([t.numel() for t in tensors], device=dev)
                sq = torch.cat(tensors).to(dtype).square()
                sq = sq * torch.tensor(scales, device=dev, dtype=dtype).repeat_interleave(sizes)
                out.index_add_(0, torch.tensor(slots, device=dev).repeat_interleave(sizes), sq)
        return list(out.view(2, NUM_EDGES, len(PRIMITIVES)))

    def _conv_slots(self) -> tuple:
        """(conv, flat index of its (cell type, edge, op) in R) for every conv of every candidate;
        built once (the supernet's modules do not change)."""
        plan = self.__dict__.get("_conv_slot_plan")
        if plan is None:
            plan = tuple((m, ((1 if cell.reduction else 0) * NUM_EDGES + e) * len(PRIMITIVES) + i)
                         for cell in self.cells for e, mixed in enumerate(cell.edges)
                         for i, op in zip(mixed.candidate_indices, mixed.ops)
                         for m in op.modules() if isinstance(m, nn.Conv2d))
            self.__dict__["_conv_slot_plan"] = plan
        return plan
