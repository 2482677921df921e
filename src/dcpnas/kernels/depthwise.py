"""Dilated depthwise convolution with a faster CPU backward.

The ``dil_conv`` candidates (and so every mixed op of the supernet, and derived cells that pick
them) run a depthwise k×k convolution with dilation 2. On CPU torch's backward of that conv is
far slower than its forward, worst at stride 2 (the reduction cells; benchmarks/README.md,
"bench_kernels.py"). This backward is built from ops that are fast there:

* ∂x: the gradient placed on the stride-1 grid (zeros between its pixels when stride > 1) and
  correlated with the flipped kernel: a stride-1 dilated depthwise conv, i.e. a forward.
* ∂w: torch's stride-1 weight gradient of that zero-filled gradient, or, when the dilated kernel
  spans more than the feature map (the 7×7 maps of C 8 networks, where torch's weight gradient is
  slow), one product-and-sum per kernel tap.

Values equal the native conv's gradients up to float rounding; the backward is written in
differentiable ops, so double backward (the exact curvature path, the reverse-mode GGN) works
through it; tests/test_kernels.py checks both against torch and against finite differences.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from .pointwise import unit_stride_pointwise
from .policy import channels_last_or_none, fast_paths_enabled

__all__ = ["Conv2d", "conv2d"]


def _stride1_grid(grad: torch.Tensor, in_hw, kernel, stride, padding, dilation) -> torch.Tensor:
    """grad (N, C, Ho, Wo) placed at stride s in a zero buffer padded so that a padding-0
    stride-1 dilated conv over it has the input's size H × W: row s·h of the stride-1 output
    grid sits at buffer row (d(k−1) − p) + s·h."""
    N, C, Ho, Wo = grad.shape
    spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
    offs = [span - p for span, p in zip(spans, padding)]
    H, W = in_hw
    if channels_last_or_none(grad):
        buf = grad.new_zeros((N, H + spans[0], W + spans[1], C)).permute(0, 3, 1, 2)
    else:
        buf = grad.new_zeros((N, C, H + spans[0], W + spans[1]))
    (sh, sw), (oh, ow) = stride, offs
    buf[:, :, oh: oh + sh * (Ho - 1) + 1: sh, ow: ow + sw * (Wo - 1) + 1: sw] = grad
    return buf


def _weight_grad_taps(x, grad, kernel, stride, padding, dilation) -> torch.Tensor:
    """∂w[c, i, j] = Σ_{n,h,w} x_pad[n, c, s·h + d·i, s·w + d·j] · grad[n, c, h, w], tap by tap."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    Ho, Wo = grad.shape[2:]
    xp = F.pad(x, (pw, pw, ph, ph))
    taps = [(xp[:, :, i * dh: i * dh + sh * (Ho - 1) + 1: sh, j * dw: j * dw + sw * (Wo - 1) + 1: sw]
             * grad).sum((0, 2, 3)) for i in range(kh) for j in range(kw)]
    return torch.stack(taps, 1).view(-1, 1, kh, kw)


class _DilatedDepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        kernel = tuple(weight.shape[2:])
        C, (H, W) = x.shape[1], x.shape[2:]
        if channels_last_or_none(grad) is None:      # under vmap: the native backward
            mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
            grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(stride), list(padding), list(dilation), False, [0, 0], C, mask)
            return grad_x, grad_w, None, None, None
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        taps = spans[0] > H or spans[1] > W            # kernel wider than the map: per-tap ∂w
        need_x, need_w = ctx.needs_input_grad[:2]
        buf = (_stride1_grid(grad, (H, W), kernel, stride, padding, dilation)
               if need_x or (need_w and not taps) else None)
        grad_x = grad_w = None
        if need_x:
            grad_x = F.conv2d(buf, weight.flip(2, 3), None, 1, 0, dilation, C)
        if need_w and taps:
            grad_w = _weight_grad_taps(x, grad, kernel, stride, padding, dilation)
        elif need_w:
            # the stride-1 output grid of the same conv is (H + 2p − span + 1) wide; buf holds it
            # from offset d(k−1) − p
            offs = [s - 1 - p for s, p in zip(spans, padding)]
            sizes = [n + 2 * p - s + 1 for n, p, s in zip((H, W), padding, spans)]
            up = buf[:, :, offs[0]: offs[0] + sizes[0], offs[1]: offs[1] + sizes[1]]
            grad_w = torch.ops.aten.convolution_backward(
                up, x, weight, None, [1, 1], list(padding), list(dilation), False, [0, 0], C,
                [False, True, False])[1]
        return grad_x, grad_w, None, None, None


def _fast_path(x, weight, stride, padding, dilation, groups) -> bool:
    return (fast_paths_enabled() and x.device.type == "cpu" and x.dim() == 4
            and groups == x.shape[1] == weight.shape[0] and weight.shape[1] == 1 and max(dilation) > 1
            and all(0 <= p <= d * (k - 1) for p, d, k in zip(padding, dilation, weight.shape[2:]))
            and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
            and fwAD.unpack_dual(x).tangent is None and fwAD.unpack_dual(weight).tangent is None)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
    """``F.conv2d`` (zero padding given as numbers); a dilated depthwise conv on CPU with a graph
    takes the faster backward of this module, and a strided 1×1 conv runs at stride 1 on a
    subsampled input (``pointwise.py``: oneDNN's strided 1×1 path is unsafe)."""
    if isinstance(padding, str):                    # 'same' / 'valid': torch's own
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    x, stride, padding = unit_stride_pointwise(x, weight, stride, padding)
    if not _fast_path(x, weight, stride, padding, dilation, groups):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    out = _DilatedDepthwiseConv.apply(x, weight, stride, padding, dilation)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` through :func:`conv2d` (zero padding); same parameters and state dict."""

    def _conv_forward(self, x, weight, bias):
        if self.padding_mode != "zeros":
            return super()._conv_forward(x, weight, bias)
        return conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
