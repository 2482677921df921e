"""The CPU fast paths of dcpnas.kernels against torch's native ops and finite differences."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dcpnas.kernels import BatchNorm2d, conv2d, native_kernels
from dcpnas.space.genotype import Genotype
from dcpnas.space.network import build_network

CL = torch.channels_last


def _cl(t, channels_last):
    return t.contiguous(memory_format=CL) if channels_last else t


# -- dilated depthwise conv ------------------------------------------------------------------------

# (size, kernel, stride): 7×7 with k 5 (span 9 > 7) takes the per-tap weight gradient, the others
# torch's stride-1 weight gradient on the zero-filled grid; 9×9 stride 2 leaves a row unused.
DW_CASES = [(14, 3, 1), (14, 5, 2), (7, 5, 1), (7, 5, 2), (9, 3, 2), (8, 5, 2), (7, 3, 1)]


@pytest.mark.parametrize("size,k,s", DW_CASES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_dilated_depthwise_matches_native_values_and_gradients(size, k, s, channels_last):
    torch.manual_seed(0)
    C, d = 5, 2
    p = d * (k - 1) // 2
    x = _cl(torch.randn(3, C, size, size, dtype=torch.float64), channels_last).requires_grad_()
    w = torch.randn(C, 1, k, k, dtype=torch.float64, requires_grad=True)
    out = conv2d(x, w, None, s, p, d, C)
    assert out.grad_fn.name().startswith("_DilatedDepthwiseConv")
    ref = F.conv2d(x, w, None, s, p, d, C)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (x, w), g)
    want = torch.autograd.grad(ref, (x, w), g)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size,k,s", [(7, 5, 2), (8, 3, 2), (6, 3, 1)])
def test_dilated_depthwise_gradients_and_double_backward_by_finite_differences(size, k, s):
    torch.manual_seed(1)
    C, d = 2, 2
    p = d * (k - 1) // 2
    x = torch.randn(2, C, size, size, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    w = torch.randn(C, 1, k, k, dtype=torch.float64, requires_grad=True)

    def f(x, w):
        return conv2d(x, w, None, s, p, d, C)

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


def test_dilated_depthwise_float32_binary_layer_and_bias():
    from dcpnas.binary import BinaryConv2d
    torch.manual_seed(2)
    conv = BinaryConv2d(8, 8, 5, 2, 4, 2, groups=8, binary_activations=False)
    x = torch.randn(4, 8, 14, 14).contiguous(memory_format=CL).requires_grad_()
    out = conv(x)
    grads = torch.autograd.grad(out.square().sum(), (x, conv.weight, conv.beta))
    with native_kernels():
        ref = conv(x)
        assert ref.grad_fn.name() != out.grad_fn.name()
        want = torch.autograd.grad(ref.square().sum(), (x, conv.weight, conv.beta))
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    b = torch.randn(8, dtype=torch.float64)
    xd, wd = torch.randn(2, 8, 9, 9, dtype=torch.float64, requires_grad=True), torch.randn(8, 1, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d(xd, wd, b, 1, 2, 2, 8), F.conv2d(xd, wd, b, 1, 2, 2, 8))


def test_dilated_depthwise_falls_back_where_the_fast_path_does_not_apply():
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    assert conv2d(x, w, None, 1, 2, 2, 4).grad_fn.name().startswith("_DilatedDepthwise")
    assert not conv2d(x, w, None, 1, 1, 1, 4).grad_fn.name().startswith("_Dilated")     # no dilation
    assert not conv2d(x, torch.randn(4, 4, 3, 3), None, 1, 2, 2, 1).grad_fn.name().startswith("_Dilated")
    torch.testing.assert_close(conv2d(x, w, None, 1, "same", 2, 4), F.conv2d(x, w, None, 1, "same", 2, 4))
    with torch.no_grad():
        assert conv2d(x, w, None, 1, 2, 2, 4).grad_fn is None
    with native_kernels():
        assert not conv2d(x, w, None, 1, 2, 2, 4).grad_fn.name().startswith("_Dilated")


# -- narrow channels-last batch norm ---------------------------------------------------------------

@pytest.fixture
def two_threads():
    """The BN path applies with more than one CPU thread (pytest-xdist workers may run with one)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("C", [3, 4, 8, 16, 24])
@pytest.mark.parametrize("affine,momentum,track", [(True, 0.1, True), (False, 0.1, True),
                                                   (True, None, True), (True, 0.1, False)])
def test_batchnorm_matches_native_values_gradients_and_running_statistics(C, affine, momentum, track,
                                                                        two_threads):
    torch.manual_seed(3)
    ours = BatchNorm2d(C, affine=affine, momentum=momentum, track_running_stats=track).double()
    native = nn.BatchNorm2d(C, affine=affine, momentum=momentum, track_running_stats=track).double()
    if affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.normal_()
    native.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(native.state_dict())
    for step in range(3):
        x = (torch.randn(4, C, 6, 5, dtype=torch.float64) * 2 + step).contiguous(memory_format=CL)
        x.requires_grad_()
        out, ref = ours(x), native(x)
        assert out.grad_fn.name().startswith("_ChannelsLastBatchNorm")
        assert out.grad_fn.nchw == (C < 16)
        assert out.is_contiguous(memory_format=CL)
        g = torch.randn_like(ref)
        if step == 1:
            g = g.contiguous()                       # an NCHW gradient into the NHWC batch norm
        elif step == 2:
            g = g.transpose(2, 3).contiguous().transpose(2, 3)   # neither layout
        params = [x] + ([ours.weight, ours.bias] if affine else [])
        nparams = [x] + ([native.weight, native.bias] if affine else [])
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, nparams, g)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(ours.buffers(), native.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    ours.eval()
    native.eval()
    x = torch.randn(2, C, 4, 4, dtype=torch.float64).contiguous(memory_format=CL)
    torch.testing.assert_close(ours(x), native(x))


@pytest.mark.parametrize("C,nchw", [(4, True), (6, True), (6, False)])
def test_batchnorm_double_backward_by_finite_differences(C, nchw, two_threads):
    from dcpnas.kernels.batchnorm import _ChannelsLastBatchNorm
    torch.manual_seed(4)
    x = torch.randn(3, C, 4, 4, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    w = torch.empty(C, dtype=torch.float64).uniform_(0.5, 1.5).requires_grad_()
    b = torch.randn(C, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return _ChannelsLastBatchNorm.apply(x, w, b, None, None, 0.0, 1e-5, nchw)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_batchnorm_falls_back_to_native_outside_its_case(two_threads):
    bn = BatchNorm2d(8)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    assert not bn(x).grad_fn.name().startswith("_ChannelsLast")                  # NCHW
    xc = x.detach().contiguous(memory_format=CL).requires_grad_()
    assert bn(xc).grad_fn.nchw
    wide = BatchNorm2d(16)(torch.randn(2, 16, 5, 5).contiguous(memory_format=CL).requires_grad_())
    assert not wide.grad_fn.nchw                                                 # wide: NHWC kernels
    with torch.no_grad():
        assert bn(xc).grad_fn is None
    torch.set_num_threads(1)
    assert not bn(xc).grad_fn.nchw                                               # one thread
    torch.set_num_threads(2)
    with native_kernels():
        assert not bn(xc).grad_fn.name().startswith("_ChannelsLast")
    bn.eval()
    assert not bn(xc).grad_fn.name().startswith("_ChannelsLast")                 # running statistics


@pytest.mark.parametrize("threads", [1, 2])
def test_batchnorm_backward_sees_one_layout(threads):
    """An NCHW gradient into an NHWC batch norm reaches torch's backward kernel in the layout of
    the saved input (mixed layouts take torch's slow generic path), for narrow and wide tensors."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.native_batch_norm_backward.default:
                seen.append((args[0].is_contiguous(memory_format=CL), args[1].is_contiguous(memory_format=CL),
                             args[0].is_contiguous(), args[1].is_contiguous()))
            return func(*args, **(kwargs or {}))

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for C in (8, 32):
            x = torch.randn(4, C, 5, 5).contiguous(memory_format=CL).requires_grad_()
            out = BatchNorm2d(C)(x)
            with Record():
                out.backward(torch.randn(4, C, 5, 5))                  # NCHW gradient
    finally:
        torch.set_num_threads(saved)
    assert len(seen) == 2
    for grad_cl, x_cl, grad_c, x_c in seen:
        assert (grad_cl, grad_c) == (x_cl, x_c)


# -- a whole network ------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [True, False])
def test_network_loss_and_every_gradient_equal_native(binary, two_threads):
    """The found-cell style network (dilated convs in both cells, C 4 and 8 channels, stride-2
    reductions) in channels-last: loss and every parameter gradient equal the native kernels'."""
    genotype = Genotype(
        normal=[("dil_conv_3x3", 0), ("dil_conv_5x5", 1), ("dil_conv_3x3", 2), ("sep_conv_3x3", 0),
                ("dil_conv_5x5", 3), ("skip_connect", 1), ("dil_conv_3x3", 4), ("max_pool_3x3", 0)],
        normal_concat=(2, 3, 4, 5),
        reduce=[("dil_conv_5x5", 0), ("dil_conv_3x3", 1), ("dil_conv_5x5", 2), ("sep_conv_5x5", 0),
                ("max_pool_3x3", 1), ("dil_conv_3x3", 3), ("dil_conv_5x5", 4), ("avg_pool_3x3", 2)],
        reduce_concat=(2, 3, 4, 5))
    torch.manual_seed(5)
    net = build_network(genotype, binary=binary, in_channels=1, C=4, layers=3).double()
    net = net.to(memory_format=CL)
    x = torch.randn(6, 1, 14, 14, dtype=torch.float64).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (6,))
    state = {k: v.clone() for k, v in net.state_dict().items()}

    def loss_and_grads():
        net.load_state_dict(state)
        out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(out, y)
        return loss, torch.autograd.grad(loss, [p for p in net.parameters() if p.requires_grad])

    loss, grads = loss_and_grads()
    with native_kernels():
        ref_loss, ref_grads = loss_and_grads()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:FutureWarning")  # legacy exporter's tracer
def test_a_traced_graph_holds_torch_ops_not_the_fast_path():
    """The legacy ONNX exporter traces: the graph must hold torch's conv, not a Python op."""
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    traced = torch.jit.trace(lambda x, w: conv2d(x, w, None, 2, 2, 2, 4), (x, w))
    graph = str(traced.graph)
    assert "PythonOp" not in graph and "aten::_convolution" in graph
