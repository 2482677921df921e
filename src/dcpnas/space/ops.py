"""Candidate operations, real-valued (DARTS layout) and 1-bit (the authors' layout).

The 1-bit layout and which convs binarise their inputs: docs/METHOD.md#decision-scope.

Real ops follow DARTS: ReLU → conv → BN. 1-bit ops follow the official DCP-NAS model: BN → binary
conv → BN → PReLU, with an identity shortcut around stride-1 separable/dilated blocks, because a
binary conv alone loses too much information for a cell to train.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn

from ..binary import BinaryConv2d
from ..kernels import BatchNorm2d, Conv2d


def _conv(C_in, C_out, kernel, stride, padding, dilation=1, groups=1, *, binary: bool,
          binary_activations: bool = False) -> nn.Module:
    if binary:
        return BinaryConv2d(C_in, C_out, kernel, stride, padding, dilation, groups,
                            binary_activations=binary_activations)
    return Conv2d(C_in, C_out, kernel, stride, padding, dilation, groups, bias=False)


def _prelu_grad(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor):
    """(g·∂prelu/∂x, g·[x ≤ 0]): slope a at x ≤ 0 (zeros of either sign included), 1 above.

    ``threshold_backward`` (ReLU's backward, one fused kernel) gives g·[x > 0]; the rest is
    g·[x ≤ 0] = g − that, and one per-channel ``addcmul``: four float passes and no bool tensor,
    which is slow on CPU (benchmarks/README.md, "bench_kernels.py"). Differentiable:
    ``threshold_backward``'s derivative in x is 0 and in g is itself, so the double backward keeps
    slope a at x = 0 as well.
    """
    pos = torch.ops.aten.threshold_backward(g, x, 0)
    neg = g - pos
    return torch.addcmul(pos, _per_channel(weight, x), neg), neg


def _per_channel(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A PReLU slope (or its tangent) in x's dtype, shaped to broadcast over x's channel dim."""
    t = t.to(x.dtype)
    return t.view(1, -1, *([1] * (x.dim() - 2))) if t.numel() > 1 else t


def _prelu_weight_dims(x: torch.Tensor, weight: torch.Tensor) -> list[int]:
    return [d for d in range(x.dim()) if not (weight.numel() > 1 and d == 1)]


class _PReLUFunction(torch.autograd.Function):
    """Native prelu forward; backward and forward-mode jvp in float elementwise ops.

    On CPU torch's prelu backward is the largest single op of a 1-bit training step, and a
    ``where``-based jvp a large part of the GGN's J·v pass (benchmarks/README.md). ∂/∂x is
    ``_prelu_grad`` and ∂/∂a = Σ grad·min(x, 0). Same convention as the native backward (slope
    a at x = 0) in the backward, the jvp and the double backward (written in differentiable ops).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight):
        return torch.prelu(x, weight.to(x.dtype))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_neg = _prelu_grad(grad, x, weight)
        grad_w = (grad_neg * x).sum(dim=_prelu_weight_dims(x, weight))   # Σ grad·min(x, 0)
        return grad_x, grad_w.reshape(weight.shape).to(weight.dtype)

    @staticmethod
    def jvp(ctx, x_t, weight_t):
        x, weight = ctx.saved_tensors
        out = _prelu_grad(x_t, x, weight)[0] if x_t is not None else None
        if weight_t is not None:
            term = _per_channel(weight_t, x) * x.clamp(max=0)
            out = term if out is None else out + term
        return out


class PReLU(nn.PReLU):
    """``nn.PReLU`` with a faster CPU backward and an opt-in form whose derivatives agree across
    AD modes at x = 0.

    At x = 0 torch's native prelu takes the learned slope in its backward but slope 1 in
    forward-mode AD and in the double backward (w.r.t. the incoming gradient). Binary activations
    make exact zeros common (BN over a few discrete values), so curvature products that mix these
    (the GGN's forward-mode Jv with a reverse-mode Jᵀu, or the exact double-backward HVP) would
    not be derivatives of the same function. ``_PReLUFunction`` (native forward; backward, jvp
    and double backward all with slope a at 0) runs under forward-mode AD (a dual input,
    ``torch.autograd.forward_ad``), and with a graph on CPU always and elsewhere while
    ``consistent_derivatives`` is set (the exact curvature path and the reverse-mode GGN set it);
    otherwise the native op. Checked
    against the native op in tests/test_ops.py. Values, parameters and
    state-dict keys are those of ``nn.PReLU``.
    """

    consistent_derivatives: bool = False

    def forward(self, x):
        if torch.compiler.is_compiling():          # no forward AD in a compiled region
            return super().forward(x)
        if fwAD.unpack_dual(x).tangent is not None or (
                torch.is_grad_enabled() and (self.consistent_derivatives or x.device.type == "cpu")):
            return _PReLUFunction.apply(x, self.weight)
        return super().forward(x)                  # no graph, or native is wanted: same values


def _after_first(seq: nn.Sequential):
    """The modules of ``seq`` after its first, without building a new Sequential per call."""
    it = iter(seq)
    next(it)
    return it


class Zero(nn.Module):
    """The ``none`` op. Mixed ops never call it (its output is zero); derived cells never hold it."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Pool(nn.Module):
    """3×3 max or average pooling followed by BN (the BN keeps pooled and conv paths on one scale)."""

    def __init__(self, kind: str, C: int, stride: int, style):
        super().__init__()
        self.pool = (nn.MaxPool2d(3, stride, 1) if kind == "max"
                     else nn.AvgPool2d(3, stride, 1, count_include_pad=False))
        self.bn = BatchNorm2d(C, affine=style.affine)

    def forward(self, x):
        return self.bn(self.pool(x))


class ReLUConvBN(nn.Module):
    """Cell input preprocessing (1×1 conv). 1-bit: BN → binary-weight conv → BN → PReLU."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, style):
        super().__init__()
        conv = _conv(C_in, C_out, kernel, stride, padding, binary=style.binary)
        if style.binary:
            self.op = nn.Sequential(BatchNorm2d(C_in, affine=style.affine), conv,
                                    BatchNorm2d(C_out, affine=style.affine), PReLU(C_out))
        else:
            self.op = nn.Sequential(nn.ReLU(inplace=False), conv,
                                    BatchNorm2d(C_out, affine=style.affine))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    """Depthwise k×k (dilated) conv followed by a 1×1 pointwise conv."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 style):
        super().__init__()
        b = style.binary
        depthwise = _conv(C_in, C_in, kernel, stride, padding, dilation, groups=C_in, binary=b,
                          binary_activations=b and style.scope == "book")
        pointwise = _conv(C_in, C_out, 1, 1, 0, binary=b, binary_activations=b)
        self.shortcut = b and stride == 1 and C_in == C_out
        if b:
            self.op = nn.Sequential(BatchNorm2d(C_in, affine=style.affine), depthwise,
                                    BatchNorm2d(C_in, affine=style.affine), PReLU(C_in),
                                    pointwise, BatchNorm2d(C_out, affine=style.affine))
            self.act = PReLU(C_out)
        else:
            self.op = nn.Sequential(nn.ReLU(inplace=False), depthwise, pointwise,
                                    BatchNorm2d(C_out, affine=style.affine))
            self.act = None

    @property
    def input_stage(self) -> nn.Module:
        """The op's first module, a function of the edge input alone (BN for the 1-bit op, ReLU
        for the real one): ``MixedOp`` may run it once for all candidates and pass ``h``."""
        return self.op[0]

    def forward(self, x, h=None):
        """h: ``input_stage(x)``, already computed (``MixedOp``'s shared input stage)."""
        if h is None:
            out = self.op(x)
        else:
            out = h
            for m in _after_first(self.op):
                out = m(out)
        if self.shortcut:
            out = out + x
        return self.act(out) if self.act is not None else out


class SepConv(nn.Module):
    """Two stacked depthwise-separable convs (the first carries the stride)."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, style):
        super().__init__()
        self.op = nn.Sequential(DilConv(C_in, C_in, kernel, stride, padding, 1, style),
                                DilConv(C_in, C_out, kernel, 1, padding, 1, style))

    @property
    def input_stage(self) -> nn.Module:
        return self.op[0].input_stage

    def forward(self, x, h=None):
        return self.op[1](self.op[0](x, h))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1×1 convs, concatenated (DARTS)."""

    def __init__(self, C_in: int, C_out: int, style):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {C_out}")
        b = style.binary
        self.pre = BatchNorm2d(C_in, affine=style.affine) if b else nn.ReLU(inplace=False)
        self.conv_1 = _conv(C_in, C_out // 2, 1, 2, 0, binary=b)
        self.conv_2 = _conv(C_in, C_out // 2, 1, 2, 0, binary=b)
        self.bn = BatchNorm2d(C_out, affine=style.affine)
        self.act = PReLU(C_out) if b else None

    @property
    def input_stage(self) -> nn.Module:
        return self.pre

    def forward(self, x, h=None):
        x = self.pre(x) if h is None else h
        # The second path is shifted by one pixel so the two halves see complementary positions;
        # padding keeps odd-sized inputs working (e.g. 7×7 feature maps).
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        out = self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
        return self.act(out) if self.act is not None else out
