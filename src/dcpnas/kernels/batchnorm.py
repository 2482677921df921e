"""BatchNorm2d with faster CPU paths for channels-last tensors.

Two cases where torch's CPU batch-norm kernels for channels-last (NHWC) memory are slow at this
project's shapes (figures: benchmarks/README.md, "bench_kernels.py"):

* **A gradient in the other layout.** An NHWC input with an NCHW gradient, which the global average
  pool's backward and FactorizedReduce's slices hand back, takes a slow generic backward; the
  backward below first puts the gradient in the input's layout (one copy).
* **Narrow channels on several threads.** The NHWC kernels split the work over threads by channel
  blocks, so with fewer than 16 channels and more than one thread they run on an NCHW copy.

Values are those of ``nn.BatchNorm2d`` up to float rounding; parameters, buffers, state-dict keys and
running-statistics updates are the native ones (tests/test_kernels.py, double backward included).
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn

from .policy import channels_last_or_none, fast_paths_enabled

__all__ = ["BatchNorm2d", "NARROW_CHANNELS"]

#: with more than one thread, channel counts below this take the NCHW kernels on CPU.
NARROW_CHANNELS = 16
# At this width and below even the NHWC forward loses to two copies and the NCHW forward; at 8
# channels it does not (benchmarks/bench_kernels.py).
_NCHW_FORWARD_CHANNELS = 4
_CL = torch.channels_last


class _ChannelsLastBatchNorm(torch.autograd.Function):
    """Training-mode batch norm of an NHWC tensor whose backward sees matching layouts.

    ``nchw``: the backward (and, up to 4 channels, the forward) runs on NCHW copies. Otherwise the
    kernels are the native NHWC ones and only the incoming gradient is made channels-last. The
    backward calls ``native_batch_norm_backward``; under ``create_graph`` that op records its own
    (native) derivative and the copies are differentiable, so the double backward of the exact
    curvature path and of the reverse-mode GGN is the native one.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, nchw):
        x_in = x.contiguous() if nchw and x.shape[1] <= _NCHW_FORWARD_CHANNELS else x
        out, mean, invstd = torch.native_batch_norm(x_in, weight, bias, running_mean, running_var,
                                                    True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps, ctx.nchw = eps, nchw
        ctx.affine = (weight is not None, bias is not None)
        return out.contiguous(memory_format=_CL)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], ctx.affine[0] and need[1], ctx.affine[1] and need[2]]
        if channels_last_or_none(grad) is None:                 # under vmap: no layout changes
            layout = None
        else:
            layout = torch.contiguous_format if ctx.nchw else _CL
            grad, x = grad.contiguous(memory_format=layout), x.contiguous(memory_format=layout)
        grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            grad, x, weight, None, None, mean, invstd, True, ctx.eps, mask)
        if grad_x is not None and layout is not None:
            grad_x = grad_x.contiguous(memory_format=_CL)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def _channels_last_with_graph(x: torch.Tensor) -> bool:
    return (fast_paths_enabled() and x.device.type == "cpu" and x.dim() == 4
            and x.is_contiguous(memory_format=_CL) and not x.is_contiguous()
            and torch.is_grad_enabled() and fwAD.unpack_dual(x).tangent is None)


def _narrow(x: torch.Tensor) -> bool:
    return x.shape[1] < NARROW_CHANNELS and torch.get_num_threads() > 1


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d``; batch statistics of an NHWC tensor on CPU with a graph take
    ``_ChannelsLastBatchNorm`` (layout-matched backward; NCHW kernels when narrow on several threads).

    Every other case (eval mode with running statistics, no graph, forward-mode AD, CUDA, NCHW
    input) is the native forward, unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        if not (batch_stats and _channels_last_with_graph(x)):
            return super().forward(x)
        self._check_input_dim(x)
        # The running-statistics bookkeeping of nn.BatchNorm2d.forward (momentum None: the
        # cumulative average over num_batches_tracked).
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        track = not self.training or self.track_running_stats
        return _ChannelsLastBatchNorm.apply(
            x, self.weight, self.bias, self.running_mean if track else None,
            self.running_var if track else None, factor, self.eps, _narrow(x))
