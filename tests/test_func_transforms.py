"""Every ``autograd.Function`` of the package works under ``torch.func`` (vmap, jvp, jacrev,
functional_call), as a user's own curvature tools need (curvlinops' GGN is built on these).

The fast paths of ``kernels/`` (dilated depthwise conv, channels-last batch norm) step aside for
torch's own ops while a transform is active; ``ops._PReLUFunction`` and the binarisers define
``setup_context`` and run under the transforms themselves. Each is compared with torch's native op
(or, for the binarisers' straight-through derivatives, their closed form) in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.func import functional_call, jacrev, jvp, vmap

from dcpnas.binary import approx_sign, weight_sign
from dcpnas.binary.quantizers import approx_sign_derivative, clipped_identity_derivative
from dcpnas.kernels import BatchNorm2d, Conv2d
from dcpnas.kernels.batchnorm import _ChannelsLastBatchNorm
from dcpnas.kernels.depthwise import _DilatedDepthwiseConv
from dcpnas.space.ops import PReLU, _PReLUFunction

DT = torch.float64
CL = torch.channels_last
# torch loads its jvp decompositions through the deprecated torch.jit.script on the first dual tensor
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


def _modules():
    """(name, package module, native twin with the same parameters, the Function it runs)."""
    torch.manual_seed(0)
    conv = Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4, bias=False).to(DT)
    twin = nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4, bias=False).to(DT)
    twin.load_state_dict(conv.state_dict())
    yield "dilated depthwise conv", conv, twin, _DilatedDepthwiseConv
    bn = BatchNorm2d(4, affine=True, track_running_stats=False).to(DT)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    twin = nn.BatchNorm2d(4, affine=True, track_running_stats=False).to(DT)
    twin.load_state_dict(bn.state_dict())
    yield "channels-last batch norm", bn, twin, _ChannelsLastBatchNorm
    act = PReLU(4).to(DT)
    with torch.no_grad():
        act.weight.uniform_(0.1, 0.4)
    twin = nn.PReLU(4).to(DT)
    twin.load_state_dict(act.state_dict())
    yield "PReLU", act, twin, _PReLUFunction


MODULES = list(_modules())
IDS = [m[0] for m in MODULES]


def _x(n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 7, 7, generator=g, dtype=DT).to(memory_format=CL)


def _applied(function):
    """Counts the calls of ``function.apply`` inside the block (is the fast path taken?)."""
    calls = []
    original = function.apply

    def apply(*args, **kw):
        calls.append(1)
        return original(*args, **kw)

    return calls, apply, original


@pytest.mark.parametrize("name,module,twin,function", MODULES, ids=IDS)
def test_fast_path_is_taken_outside_transforms(name, module, twin, function, monkeypatch):
    """The comparisons below would prove nothing if the Function never ran: outside a transform,
    with a graph, on channels-last CPU input, each module runs its Function."""
    calls, apply, _ = _applied(function)
    monkeypatch.setattr(function, "apply", apply)
    module(_x().requires_grad_()).sum().backward()
    assert calls


@pytest.mark.parametrize("name,module,twin,function", MODULES, ids=IDS)
def test_jacrev_and_jvp_equal_native(name, module, twin, function):
    x, t = _x(), _x(seed=2)
    f, native = (lambda z: module(z).square()), (lambda z: twin(z).square())
    assert torch.allclose(jacrev(f)(x), jacrev(native)(x), atol=1e-10)
    out, tan = jvp(f, (x,), (t,))
    out_n, tan_n = jvp(native, (x,), (t,))
    assert torch.allclose(out, out_n, atol=1e-12) and torch.allclose(tan, tan_n, atol=1e-10)


@pytest.mark.parametrize("name,module,twin,function", MODULES, ids=IDS)
def test_vmap_equals_native(name, module, twin, function):
    xb = torch.stack([_x(seed=s) for s in range(3)])
    got = vmap(lambda z: module(z).square().sum(dim=(1, 2, 3)))(xb)
    ref = torch.stack([twin(z).square().sum(dim=(1, 2, 3)) for z in xb])
    assert torch.allclose(got, ref, atol=1e-10)
    # per-sample gradients, the classic vmap(grad) use
    per = vmap(torch.func.grad(lambda z: module(z).square().sum()))(xb)
    ref = torch.stack([torch.autograd.grad(twin(z.requires_grad_()).square().sum(), z)[0] for z in xb.clone()])
    assert torch.allclose(per, ref, atol=1e-10)


@pytest.mark.parametrize("name,module,twin,function", MODULES, ids=IDS)
def test_functional_call_jacobian_in_parameters(name, module, twin, function):
    x = _x()
    params = {k: v.detach() for k, v in module.named_parameters()}
    jac = jacrev(lambda p: functional_call(module, p, (x,)).square())(params)
    ref = jacrev(lambda p: functional_call(twin, p, (x,)).square())(params)
    assert jac.keys() == ref.keys()
    for k in jac:
        assert torch.allclose(jac[k], ref[k], atol=1e-10), k


@pytest.mark.parametrize("binarise,derivative", [(approx_sign, approx_sign_derivative),
                                                  (weight_sign, clipped_identity_derivative)],
                         ids=["approx_sign", "weight_sign"])
def test_binarisers_under_transforms(binarise, derivative):
    x = torch.linspace(-1.7, 1.7, 12, dtype=DT).reshape(3, 4) + 0.01
    t = torch.randn(3, 4, dtype=DT)
    assert torch.equal(vmap(binarise)(x), torch.sign(x))
    out, tan = jvp(binarise, (x,), (t,))
    assert torch.equal(out, torch.sign(x)) and torch.allclose(tan, t * derivative(x))
    jac = jacrev(binarise)(x)
    assert torch.allclose(jac.reshape(12, 12), torch.diag(derivative(x).flatten()))
    per = vmap(torch.func.grad(lambda z: (binarise(z) * z).sum()))(x)
    assert torch.allclose(per, torch.sign(x) + x * derivative(x))
