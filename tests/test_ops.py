"""The Child's PReLU: its CPU backward against torch's native prelu (an independent oracle)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dcpnas.space.ops import PReLU, _PReLUFunction


@pytest.mark.parametrize("channels", [1, 5])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prelu_backward_equals_native(channels, layout, dtype):
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(4, 5, 6, 7, generator=g, dtype=dtype)
    x[:, :, ::3] = 0.0                                   # exact zeros: the kink, common after 1-bit convs
    x[:, :, 1::6] = -0.0                                 # negative zero is on the slope-a side too
    grad = torch.randn(x.shape, generator=g, dtype=dtype)
    if layout == "channels_last":
        x, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    ours, native = PReLU(channels).to(dtype), nn.PReLU(channels).to(dtype)
    with torch.no_grad():
        ours.weight.uniform_(-0.5, 0.5, generator=g)
        native.weight.copy_(ours.weight)
    outs = []
    for act in (ours, native):
        xr = x.clone().requires_grad_(True)
        y = act(xr)
        gx, gw = torch.autograd.grad(y, (xr, act.weight), grad)
        outs.append((y, gx, gw))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, **tol)
    assert ours(x.clone().requires_grad_(True)).grad_fn.name().endswith("_PReLUFunctionBackward")


def test_prelu_double_backward_keeps_the_slope_at_zero():
    """d(∂y/∂x · u)/du at x = 0 is the slope a, as in the first backward (native gives 1 there)."""
    act = PReLU(1).double()
    x = torch.tensor([0.0, -2.0, 3.0], dtype=torch.float64).view(1, 1, 3).requires_grad_(True)
    u = torch.ones_like(x, requires_grad=True)
    first, = torch.autograd.grad(act(x), x, u, create_graph=True)
    second, = torch.autograd.grad(first, u, torch.ones_like(first))
    a = act.weight.item()
    assert torch.equal(second.flatten(), torch.tensor([a, a, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("channels", [1, 3])
def test_prelu_double_backward_by_finite_differences(channels):
    """Second derivatives through the custom backward (in x, the slope and the incoming gradient)
    against finite differences, away from the kink where they exist."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    x = (x + x.sign() * 0.1).requires_grad_(True)        # |x| ≥ 0.1: finite steps never cross 0
    w = torch.empty(channels, dtype=torch.float64).uniform_(-0.5, 0.5, generator=g).requires_grad_(True)
    assert torch.autograd.gradgradcheck(_PReLUFunction.apply, (x, w))


@pytest.mark.parametrize("channels", [1, 5])
def test_prelu_jvp_is_the_explicit_directional_derivative(channels):
    """Forward-mode AD through the Child's PReLU (fwAD dual tensors and torch.func.jvp), tangents
    on x and on the slope: ẋ·(1 if x > 0 else a) + ȧ·min(x, 0), slope a at the kink x = 0."""
    import torch.autograd.forward_ad as fwAD

    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, 4, 4, generator=g, dtype=torch.float64)
    x[:, :, ::2, ::3] = 0.0
    w = torch.empty(channels, dtype=torch.float64).uniform_(-0.5, 0.5, generator=g)
    x_t, w_t = torch.randn(x.shape, generator=g, dtype=torch.float64), torch.randn_like(w)
    a, a_t = (t.view(1, -1, 1, 1) if channels > 1 else t for t in (w, w_t))
    expected = torch.where(x > 0, x_t, a * x_t) + a_t * torch.minimum(x, torch.zeros_like(x))
    act = PReLU(channels).double()
    with torch.no_grad():
        act.weight.copy_(w)
    with fwAD.dual_level():  # the module sees a dual input (tangent on x only)
        only_x = fwAD.unpack_dual(act(fwAD.make_dual(x, x_t))).tangent
        both = fwAD.unpack_dual(_PReLUFunction.apply(fwAD.make_dual(x, x_t),
                                                     fwAD.make_dual(w, w_t))).tangent
    torch.testing.assert_close(only_x, torch.where(x > 0, x_t, a * x_t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(both, expected, rtol=1e-12, atol=1e-12)
    _, func_t = torch.func.jvp(_PReLUFunction.apply, (x, w), (x_t, w_t))
    torch.testing.assert_close(func_t, expected, rtol=1e-12, atol=1e-12)
