"""No convolution of the package reaches oneDNN's strided 1×1 weight-gradient path, and every conv
shape of the search space has the gradients of a float64 reference.

oneDNN's 1×1 convolution with stride > 1 runs its backward-weights pass through a "reduce to unit
stride" workspace that it overruns on NHWC inputs with fewer channels than its block
(uxlfoundation/oneDNN#6035): heap corruption, hangs, or wrong weight gradients, depending on the CPU
and the thread count. ``kernels.conv2d`` subsamples first and convolves at stride 1 instead (the same
function); docs/METHOD.md#strided-pointwise-convolutions.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from dcpnas.kernels import Conv2d, conv2d, native_kernels
from dcpnas.space import Supernet
from dcpnas.space.named import DARTS_V2, DDPNAS_MCN_2
from dcpnas.space.network import DerivedNetwork
from dcpnas.space.ops import FactorizedReduce
from dcpnas.space.primitives import OpStyle

CL = torch.channels_last
_CONV_OPS = {torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default,
             torch.ops.aten.mkldnn_convolution.default}


class StridedPointwiseSpy(TorchDispatchMode):
    """Records every dispatched convolution (forward or backward) with a 1×1 kernel and stride > 1."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple] = []
        self.convs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _CONV_OPS:
            self.convs += 1
            weight = args[2] if func is torch.ops.aten.convolution_backward.default else args[1]
            stride = args[4] if func is torch.ops.aten.convolution_backward.default else args[3]
            if tuple(weight.shape[2:]) == (1, 1) and max(stride) > 1:
                self.found.append((str(func), tuple(args[0].shape), tuple(weight.shape), tuple(stride)))
        return func(*args, **(kwargs or {}))


def _networks():
    torch.manual_seed(0)
    yield "parent supernet", Supernet("parent", C=4, layers=3)
    yield "child supernet", Supernet("child", C=4, layers=3)
    yield "child supernet, partial channels", Supernet("child", C=4, layers=3, partial_channels=4)
    for name, g in (("DDPNAS_MCN_2", DDPNAS_MCN_2), ("DARTS_V2", DARTS_V2)):
        for binary in (True, False):
            yield f"{name} {'1-bit' if binary else 'real'}", DerivedNetwork(g, binary=binary, C=4, layers=3)
    yield "DDPNAS_MCN_2 1-bit imagenet", DerivedNetwork(DDPNAS_MCN_2, C=4, layers=3, layout="imagenet",
                                                        num_classes=5)


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    n = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(n)


@pytest.mark.parametrize("name,net", list(_networks()), ids=lambda v: v if isinstance(v, str) else "")
def test_no_strided_pointwise_conv_is_dispatched(name, net, threads):
    net = net.to(memory_format=CL)
    side = 48 if "imagenet" in name else 12
    x = torch.randn(4, 3, side, side).to(memory_format=CL).requires_grad_()
    with StridedPointwiseSpy() as spy:
        out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        out.square().sum().backward()
    assert spy.convs > 0
    assert not spy.found, f"{name}: strided 1×1 convs dispatched: {spy.found[:3]} ({len(spy.found)} in all)"


def test_spy_sees_a_strided_pointwise_conv():
    """The spy is not blind: torch's own strided 1×1 conv is recorded, forward and backward."""
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    w = torch.randn(2, 4, 1, 1, requires_grad=True)
    with StridedPointwiseSpy() as spy:
        F.conv2d(x, w, stride=2).sum().backward()
    assert len(spy.found) == 2


# -- values: every conv shape of the search space against float64 -----------------------------

def _space_convs():
    """(in, out, kernel, stride, padding, dilation, groups) of the search space's convs at C 4."""
    C = 4
    for stride in (1, 2):
        yield C, C, 1, stride, 0, 1, 1                       # preprocessing / factorised reduce
        for k in (3, 5):
            yield C, C, k, stride, k // 2, 1, C              # sep_conv depthwise
            yield C, C, k, stride, k - 1, 2, C               # dil_conv depthwise
    yield C, C, 1, 1, 0, 1, 1                                # pointwise
    yield 3, 3 * C, 3, 1, 1, 1, 1                            # CIFAR stem
    yield 3, C // 2, 3, 2, 1, 1, 1                           # ImageNet stem
    yield 2, 1, 1, 2, 1, 1, 1                                # 1×1, stride 2, with padding


@pytest.mark.parametrize("spec", list(_space_convs()), ids=lambda s: "in{}-out{}-k{}-s{}-p{}-d{}-g{}".format(*s))
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("side", [7, 8])
def test_conv_gradients_match_float64(spec, layout, side, threads):
    c_in, c_out, k, stride, padding, dilation, groups = spec
    g = torch.Generator().manual_seed(side + 10 * k + stride)
    x64 = torch.randn(5, c_in, side, side, generator=g, dtype=torch.float64)
    w64 = torch.randn(c_out, c_in // groups, k, k, generator=g, dtype=torch.float64)
    up = None

    def grads(x, w, fast):
        nonlocal up
        x = x.clone().requires_grad_()
        w = w.clone().requires_grad_()
        xin = x.to(memory_format=CL) if layout == "nhwc" else x
        if fast:
            out = conv2d(xin, w, None, stride, padding, dilation, groups)
        else:
            out = F.conv2d(xin, w, None, stride, padding, dilation, groups)
        if up is None:
            up = torch.randn(out.shape, generator=g, dtype=torch.float64)
        out.backward(up.to(out.dtype))
        return out.detach().double(), x.grad.double(), w.grad.double()

    ref = grads(x64, w64, fast=False)           # float64: no oneDNN, torch's reference kernels
    for got in (grads(x64.float(), w64.float(), fast=True),):
        for r, v, what in zip(ref, got, ("output", "input gradient", "weight gradient")):
            assert torch.allclose(v, r, rtol=1e-4, atol=1e-4), f"{what}: max |Δ| {(v - r).abs().max():.3g}"
    with native_kernels():
        got = grads(x64.float(), w64.float(), fast=True)
    for r, v in zip(ref, got):
        assert torch.allclose(v, r, rtol=1e-4, atol=1e-4)


def test_factorized_reduce_keeps_its_function_and_parameters():
    """The stride-1 form computes DARTS's two offset stride-2 1×1 convs exactly (float64 oracle:
    torch's own strided conv, which takes no oneDNN path in float64), with the same state dict."""
    torch.manual_seed(0)
    for binary in (False, True):
        fr = FactorizedReduce(4, 6, OpStyle(binary=binary, scope="official", affine=True)).double()
        assert {k for k in fr.state_dict()} >= {"conv_1.weight", "conv_2.weight"}
        assert fr.conv_1.weight.shape == (3, 4, 1, 1)
        for side in (7, 8):
            x = torch.randn(3, 4, side, side, dtype=torch.float64)
            h = fr.pre(x)
            shifted = F.pad(h[:, :, 1:, 1:], (0, 1, 0, 1))
            w1 = fr.conv_1.effective_weight() if binary else fr.conv_1.weight
            w2 = fr.conv_2.effective_weight() if binary else fr.conv_2.weight
            expected = torch.cat([F.conv2d(h, w1, stride=2), F.conv2d(shifted, w2, stride=2)], dim=1)
            expected = fr.bn(expected)
            if fr.act is not None:
                expected = fr.act(expected)
            assert torch.allclose(fr(x), expected, atol=1e-12)


def test_conv_module_output_stays_channels_last():
    conv = Conv2d(4, 4, 1, stride=2, bias=False).to(memory_format=CL)
    out = conv(torch.randn(2, 4, 9, 9).to(memory_format=CL))
    assert out.shape == (2, 4, 5, 5) and out.is_contiguous(memory_format=CL)
