"""1-bit building blocks against hand-worked values and independent recomputations."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dcpnas.binary import (BinaryConv2d, approx_sign, binary_convs, hard_sign, reconstruction_loss,
                           set_binary_weights, weight_sign)

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D, requires_grad=True)


# -- quantizers ----------------------------------------------------------------------------------
def test_weight_sign_forward_and_clipped_ste():
    w = t([-1.5, -1.0, -0.3, 0.0, 0.7, 2.0])
    b = weight_sign(w)
    # sign with sign(0) = +1, every value exactly ±1.
    assert b.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=D)
    (g,) = torch.autograd.grad(b, w, upstream)
    # Eq. 4.35: ∂b/∂ŵ = 1_{|ŵ|≤1}, the boundary ±1 included.
    assert g.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 0.0]


def test_approx_sign_forward_and_bireal_gradient():
    x = t([-1.5, -1.0, -0.5, 0.0, 0.25, 0.9, 1.0, 2.0])
    y = approx_sign(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    upstream = torch.arange(1.0, 9.0, dtype=D)
    (g,) = torch.autograd.grad(y, x, upstream)
    # 2 − 2|x| inside (−1, 1), 0 outside: [0, 0, 1, 2, 1.5, 0.2, 0, 0] times the upstream gradient.
    expected = [0.0, 0.0, 3 * 1.0, 4 * 2.0, 5 * 1.5, 6 * 0.2, 0.0, 0.0]
    assert g.tolist() == pytest.approx(expected, abs=1e-12)


def test_hard_sign_maps_zero_to_plus_one():
    assert hard_sign(torch.tensor([-0.0, 0.0, -3.0, 1e-30])).tolist() == [1.0, 1.0, -1.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_hard_sign_equals_the_comparison_form_for_every_number(dtype):
    """The copysign form against where(x >= 0, 1, −1): signed zeros, subnormals, infinities, the
    smallest and largest finite numbers and random values, in each dtype; layout kept."""
    info = torch.finfo(dtype)
    special = torch.tensor([-0.0, 0.0, info.tiny, -info.tiny, info.tiny / 4, -info.tiny / 4,
                            info.max, -info.max, float("inf"), float("-inf"), 1.0, -1.0], dtype=dtype)
    x = torch.cat([special, torch.randn(4000).to(dtype), torch.randn(1000).to(dtype) * 1e-30])
    expected = torch.where(x >= 0, 1.0, -1.0).to(dtype)
    assert torch.equal(hard_sign(x), expected)
    img = torch.randn(2, 3, 4, 5).to(dtype).contiguous(memory_format=torch.channels_last)
    assert hard_sign(img).is_contiguous(memory_format=torch.channels_last)


def test_double_backward_through_binarisers():
    # f(x) = Σ c·approx_sign(x): f' = c(2 − 2|x|) inside, f'' = −2c·sign(x) inside, 0 outside.
    x = t([-1.5, -0.5, 0.25, 0.75, 3.0])
    c = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=D)
    (g,) = torch.autograd.grad((c * approx_sign(x)).sum(), x, create_graph=True)
    assert g.tolist() == pytest.approx([0.0, 2.0, 4.5, 2.0, 0.0])
    (h,) = torch.autograd.grad(g.sum(), x)
    assert h.tolist() == pytest.approx([0.0, 4.0, -6.0, -8.0, 0.0])

    # f(w) = Σ w·weight_sign(w): f' = b + w·1_{|w|≤1}, f'' = 2·1_{|w|≤1} (clamp has f'' = 0).
    w = t([-2.0, -0.5, 0.5, 3.0])
    (g,) = torch.autograd.grad((w * weight_sign(w)).sum(), w, create_graph=True)
    assert g.tolist() == pytest.approx([-1.0, -1.5, 1.5, 1.0])
    (h,) = torch.autograd.grad(g.sum(), w)
    assert h.tolist() == pytest.approx([0.0, 2.0, 2.0, 0.0])


def _detach_trick(surrogate):
    # The textbook STE form, an independent formulation of the same estimator.
    def binarise(x):
        s = surrogate(x)
        return s + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - s).detach()
    return binarise


@pytest.mark.parametrize("fn, surrogate", [
    (approx_sign, lambda x: torch.where(x.abs() < 1, 2 * x - x * x.abs(), torch.sign(x))),
    (weight_sign, lambda w: torch.where(w.abs() <= 1, w, torch.sign(w))),
])
# torch 2.14 loads its jvp decompositions through the deprecated torch.jit.script on a process's
# first dual tensor; the search silences that once (search/maths/curvature.py, _forward_ad_ready).
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_binarisers_match_the_detach_trick_in_every_ad_mode(fn, surrogate):
    import torch.autograd.forward_ad as fwAD

    reference = _detach_trick(surrogate)
    torch.manual_seed(0)
    x = (torch.randn(200, dtype=D) * 1.2).requires_grad_()
    c = torch.randn(200, dtype=D)
    assert torch.equal(fn(x), reference(x))
    # first and second derivatives of Σ c·x²·b(x) (so the second derivative sees the STE and x)
    grads = []
    for f in (fn, reference):
        (g,) = torch.autograd.grad((c * x * x * f(x)).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((g * c).sum(), x)
        grads.append((g.detach(), h))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=0, atol=1e-12)
    # forward-mode AD: the jvp is the STE derivative times the tangent
    tangent = torch.randn(200, dtype=D)
    jvps = []
    for f in (fn, reference):
        with fwAD.dual_level():
            jvps.append(fwAD.unpack_dual(f(fwAD.make_dual(x.detach(), tangent))).tangent)
    torch.testing.assert_close(jvps[0], jvps[1], rtol=0, atol=1e-12)


def test_torch_func_grad_through_binarisers():
    x = torch.tensor([-1.5, -0.5, 0.25, 0.75], dtype=D)
    g = torch.func.grad(lambda v: (approx_sign(v) * 3.0).sum())(x)
    assert g.tolist() == pytest.approx([0.0, 3.0, 4.5, 1.5])
    g = torch.func.grad(lambda v: (weight_sign(v) * 2.0).sum())(x)
    assert g.tolist() == pytest.approx([0.0, 2.0, 2.0, 2.0])


def test_torch_func_grad_of_binary_conv_matches_autograd():
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 4, 3, padding=1).double()
    x = torch.randn(2, 3, 5, 5, dtype=D)
    params = dict(conv.named_parameters())

    def loss(p):
        return torch.func.functional_call(conv, p, (x,)).pow(2).sum()

    g_func = torch.func.grad(loss)(params)
    g_auto = torch.autograd.grad(loss(params), list(params.values()))
    for (name, gf), ga in zip(g_func.items(), g_auto):
        assert torch.allclose(gf, ga), name
        assert gf.abs().sum() > 0, name  # weight, β: both get a gradient


# -- BinaryConv2d ----------------------------------------------------------------------------------
def test_beta_initialised_to_mean_abs_per_channel():
    torch.manual_seed(1)
    conv = BinaryConv2d(3, 5, 3)
    for o in range(5):
        expected = sum(abs(v) for v in conv.weight[o].flatten().tolist()) / conv.weight[o].numel()
        assert conv.beta[o].item() == pytest.approx(expected, rel=1e-6)
    # reset_parameters re-initialises ŵ and β together.
    with torch.no_grad():
        conv.weight.mul_(3.0)
    conv.reset_parameters()
    assert torch.allclose(conv.beta, conv.weight.abs().mean(dim=(1, 2, 3)))


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 0, 1, 1), (1, 2, 2, 4)])
def test_binary_conv_equals_explicit_conv(stride, padding, dilation, groups):
    torch.manual_seed(2)
    conv = BinaryConv2d(4, 8, 3, stride, padding, dilation, groups).double()
    with torch.no_grad():
        conv.beta.uniform_(0.1, 2.0)  # not the init value, so β really enters
    x = torch.randn(2, 4, 9, 9, dtype=D)
    beta = conv.beta.detach().view(-1, 1, 1, 1)
    w_b = beta * torch.where(conv.weight.detach() >= 0, 1.0, -1.0)
    x_b = torch.where(x >= 0, 1.0, -1.0).to(D)
    args = (stride, padding, dilation, groups)

    out = conv(x)
    assert torch.allclose(out, F.conv2d(x_b, w_b, None, *args))
    # XNOR-popcount view: out / β is an integer (sum of ±1 products; zero padding adds 0).
    fan_in = 4 // groups * 9
    k = out.detach() / beta.view(1, -1, 1, 1)
    assert torch.allclose(k, k.round(), atol=1e-9) and k.abs().max() <= fan_in

    conv.binary_activations = False  # W1A32
    assert torch.allclose(conv(x), F.conv2d(x, w_b, None, *args))
    conv.binary_weights = False  # real weights and activations: a plain convolution
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight.detach(), None, *args))
    conv.binary_activations = True  # W32A1 (step 1 of the two-step recipe)
    assert torch.allclose(conv(x), F.conv2d(x_b, conv.weight.detach(), None, *args))


def test_set_binary_weights_switches_every_layer():
    net = nn.Sequential(BinaryConv2d(2, 2, 1), nn.ReLU(), nn.Sequential(BinaryConv2d(2, 2, 1)))
    assert len(binary_convs(net)) == 2
    set_binary_weights(net, False)
    assert all(c.effective_weight() is c.weight for c in binary_convs(net))
    set_binary_weights(net, True)
    for c in binary_convs(net):
        assert torch.equal(c.effective_weight(), c.beta.view(-1, 1, 1, 1) * torch.sign(c.weight))


# -- reconstruction loss ---------------------------------------------------------------------------
def _tiny_layer():
    conv = BinaryConv2d(1, 2, (1, 2)).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5, -0.2]]], [[[-1.0, 0.3]]]], dtype=D))
        conv.beta.copy_(torch.tensor([0.4, 0.5], dtype=D))
    return conv


def test_reconstruction_loss_hand_computed():
    conv = _tiny_layer()
    # b = sign(ŵ) = [[1, −1], [−1, 1]]; residual ŵ − βb = [[0.1, 0.2], [−0.5, −0.2]].
    loss = reconstruction_loss(conv)
    assert loss.item() == pytest.approx(0.01 + 0.04 + 0.25 + 0.04)  # 0.34
    g_w, g_beta = torch.autograd.grad(loss, [conv.weight, conv.beta])
    # ∂/∂ŵ = 2(ŵ − βb) with b constant.
    assert g_w.flatten().tolist() == pytest.approx([0.2, 0.4, -1.0, -0.4])
    # ∂/∂β_o = −2 Σ (ŵ − βb)·b: channel 0: −2(0.1 − 0.2) = 0.2; channel 1: −2(0.5 − 0.2) = −0.6.
    assert g_beta.tolist() == pytest.approx([0.2, -0.6])

    assert reconstruction_loss(conv, reduction="mean").item() == pytest.approx(0.34 / 4)
    two = nn.Sequential(conv, nn.ReLU(), _tiny_layer())
    assert reconstruction_loss(two).item() == pytest.approx(0.68)
    assert reconstruction_loss(nn.Linear(2, 2)).item() == 0.0
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_loss(conv, reduction="max")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reconstruction_loss_of_a_supernet_equals_the_per_layer_sum(reduction):
    """The flat one-pass L_R against Eq. 4.23 written layer by layer: value and ∂/∂(ŵ, β)."""
    from dcpnas.space import Supernet
    torch.manual_seed(0)
    net = Supernet("child", in_channels=3, num_classes=5, C=4, layers=3).double()
    with torch.no_grad():
        for m in binary_convs(net):
            m.beta.uniform_(0.05, 0.5)
    params = [p for m in binary_convs(net) for p in (m.weight, m.beta)]
    expected = 0.0
    for m in binary_convs(net):
        b = torch.where(m.weight >= 0, 1.0, -1.0).to(D)
        err = (m.weight - m.beta.view(-1, 1, 1, 1) * b).pow(2)
        expected = expected + (err.sum() if reduction == "sum" else err.mean())
    loss = reconstruction_loss(net, reduction=reduction)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    for a, b in zip(torch.autograd.grad(loss, params), torch.autograd.grad(expected, params)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
