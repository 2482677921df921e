"""The DARTS mixed operation: Σ_m softmax(α)_m · o_m(x) over one edge (Eq. 4.28).

With ``partial = K > 1`` it is PC-DARTS's partial channel connection (Xu et al., 2020,
arXiv 1907.05737): only the first C/K channels go through the candidate ops, the other channels
bypass them (max-pooled 2×2 on a reduction edge), and a channel shuffle with K groups mixes the two
parts so that the next edge sees other channels. The ops cost about 1/K of their full-width cost.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .primitives import NONE_INDEX, PRIMITIVES, OpStyle, build_op


class MixedOp(nn.Module):
    """All candidate ops of one edge, mixed by architecture weights.

    The ``none`` op is not built and never computed: its output is zero, so it only takes part
    through the softmax normalisation of the weights.
    """

    def __init__(self, channels: int, stride: int, style: OpStyle, partial: int = 1, *,
                 share_input_stage: bool = True):
        super().__init__()
        if partial < 1 or channels % partial:
            raise ValueError(f"partial channels K={partial} must divide the {channels} channels")
        self.partial = partial
        self.ops = nn.ModuleList(build_op(name, channels // partial, stride, style)
                                 for name in PRIMITIVES if name != "none")
        self._indices = [i for i in range(len(PRIMITIVES)) if i != NONE_INDEX]
        self.stride = stride
        # Shared input stage: the sep/dil convs (and the factorised reduce) all open with the
        # same function of the edge input — ReLU in the real ops, a non-affine BatchNorm in the
        # 1-bit ones (their running statistics start equal and see the same batches) — so it is
        # computed once per edge (docs/METHOD.md#shared-input-stage).
        stages = [getattr(op, "input_stage", None) for op in self.ops]
        takes = [isinstance(m, nn.ReLU) or (isinstance(m, nn.BatchNorm2d) and not m.affine)
                 for m in stages]
        self._takes_h = tuple(takes) if sum(takes) > 1 else None
        self.share_input_stage = share_input_stage

    @property
    def candidate_indices(self) -> list[int]:
        """Indices into PRIMITIVES of ``self.ops``, in order (``none`` is not built)."""
        return list(self._indices)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        xa, xb = self._split(x)
        h = self._shared_input_stage(xa)
        out = None
        if h is None:
            for i, op in zip(self._indices, self.ops):
                y = weights[i] * op(xa)
                out = y if out is None else out + y
        else:
            for i, op, takes in zip(self._indices, self.ops, self._takes_h):
                y = weights[i] * (op(xa, h) if takes else op(xa))
                out = y if out is None else out + y
        return self._join(out, xb)

    def _shared_input_stage(self, x: torch.Tensor):
        """The input stage of every op that opens with it, run once, or None (sharing off, or a
        BatchNorm in eval mode: each op then reads its own running statistics)."""
        if self._takes_h is None or not self.share_input_stage:
            return None
        stages = [op.input_stage for op, takes in zip(self.ops, self._takes_h) if takes]
        lead = stages[0]
        if not isinstance(lead, nn.BatchNorm2d):
            return lead(x)
        if not lead.training:
            return None
        h = lead(x)
        if lead.track_running_stats and lead.running_mean is not None:
            # the update each op's own BN would have made: all start equal, all see this batch
            with torch.no_grad():
                for bn in stages[1:]:
                    bn.running_mean.copy_(lead.running_mean)
                    bn.running_var.copy_(lead.running_var)
                    bn.num_batches_tracked.copy_(lead.num_batches_tracked)
        return h

    def forward_path(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Only candidate ``PRIMITIVES[index]`` (single-path sampling); ``none`` gives zeros."""
        xa, xb = self._split(x)
        if index == NONE_INDEX:
            out = xa[:, :, :: self.stride, :: self.stride].mul(0.0)
        else:
            out = self.ops[self._indices.index(index)](xa)
        return self._join(out, xb)

    # -- partial channels (PC-DARTS) ------------------------------------------------------------
    def _split(self, x: torch.Tensor):
        if self.partial == 1:
            return x, None
        c = x.shape[1] // self.partial
        return x[:, :c], x[:, c:]

    def _join(self, out: torch.Tensor, xb) -> torch.Tensor:
        if xb is None:
            return out
        if self.stride == 2:
            # ceil_mode: an odd side (7 → 4) matches the ops' padded stride-2 output; even sides
            # are PC-DARTS's 2×2 pool unchanged.
            xb = F.max_pool2d(xb, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([out, xb], dim=1), self.partial)

    def op_for(self, name: str) -> nn.Module:
        """The module of candidate ``name`` on this edge (``none`` has none)."""
        idx = PRIMITIVES.index(name)
        return self.ops[self._indices.index(idx)]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: N×(g·c)×H×W viewed as g groups of c, transposed to c × g."""
    n, ch, h, w = x.shape
    return x.view(n, groups, ch // groups, h, w).transpose(1, 2).reshape(n, ch, h, w)
