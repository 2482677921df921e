"""Channels-last (NHWC) is a speed choice only: on CPU as on CUDA, both supernets, the GGN curvature
product and a derived 1-bit network compute the same logits, gradients and BN statistics in NHWC as
in NCHW (float64, fixed batch), and the search and training put their models and batches in it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dcpnas.binary import BinaryConv2d
from dcpnas.search.maths.curvature import ggn_product
from dcpnas.space import Supernet
from dcpnas.space.named import DDPNAS_MCN_2
from dcpnas.space.network import DerivedNetwork
from dcpnas.utils.distributed import use_channels_last

DT = torch.float64
CL = torch.channels_last


def _is_nhwc(net) -> bool:
    """Whether a dense k×k conv weight of ``net`` (unambiguous about its layout) is NHWC."""
    w = next(m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)
             and m.groups == 1 and m.in_channels > 1 and m.kernel_size[0] > 1)
    return w.is_contiguous(memory_format=CL) and not w.is_contiguous()


def _pair(net):
    """``net`` in NCHW and an NHWC copy with the same values."""
    return net, copy.deepcopy(net).to(memory_format=CL)


def _batch(channels=3, side=16, n=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, side, side, generator=g, dtype=DT)
    return x, torch.randint(0, 5, (n,), generator=g)


def _sign_ties(net, x) -> int:
    """Entries that a binary conv binarises with |input| < 1e-9: the sign of a true zero depends on
    summation order (a BN output equal to its mean comes out as ±1e-17), so NCHW and NHWC may
    binarise them differently. The tests use batches without such ties and check that they have none."""
    found = []
    hooks = [m.register_forward_pre_hook(lambda m, i: found.append(int((i[0].abs() < 1e-9).sum())))
             for m in net.modules() if isinstance(m, BinaryConv2d) and m.binary_activations]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return sum(found)


def _loss_grads_buffers(net, x, y):
    assert _sign_ties(copy.deepcopy(net), x) == 0, "a rounding-order sign tie in this batch: pick another"
    net.zero_grad(set_to_none=True)
    logits = net(x)
    F.cross_entropy(logits, y).backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    return logits.detach(), grads, {n: b.clone() for n, b in net.named_buffers()}


def _assert_same(a, b, tol=1e-9):
    (la, ga, ba), (lb, gb, bb) = a, b
    assert torch.allclose(la, lb, atol=tol, rtol=0)
    assert ga.keys() == gb.keys() and len(ga) > 10
    for k in ga:
        assert torch.allclose(ga[k], gb[k], atol=tol, rtol=tol), k
    for k in ba:
        assert torch.allclose(ba[k].to(DT), bb[k].to(DT), atol=tol, rtol=0), k


@pytest.mark.parametrize("kind", ["parent", "child"])
@pytest.mark.parametrize("partial", [1, 2])
def test_supernet_is_the_same_function_in_nhwc(kind, partial):
    torch.manual_seed(0)
    net = Supernet(kind, in_channels=3, num_classes=5, C=4, layers=3,
                   partial_channels=partial).to(DT)
    with torch.no_grad():
        for a in net.arch_parameters():
            a.normal_(0.0, 0.5)
    nchw, nhwc = _pair(net)
    x, y = _batch()
    x_cl = x.contiguous(memory_format=CL)
    out = _loss_grads_buffers(nhwc, x_cl, y)
    assert _is_nhwc(nhwc) and not _is_nhwc(nchw)
    _assert_same(_loss_grads_buffers(nchw, x, y), out)


def test_ggn_product_is_the_same_in_nhwc():
    torch.manual_seed(1)
    net = Supernet("child", in_channels=3, num_classes=5, C=4, layers=3).to(DT)
    nchw, nhwc = _pair(net)
    x, _ = _batch()
    assert _sign_ties(copy.deepcopy(net), x) == 0
    g = torch.Generator().manual_seed(4)
    v = [torch.randn(a.shape, generator=g, dtype=DT) for a in net.arch_parameters()]
    a = ggn_product(nchw, x, nchw.arch_parameters(), v)
    b = ggn_product(nhwc, x.contiguous(memory_format=CL), nhwc.arch_parameters(), v)
    assert max(t.abs().max().item() for t in a) > 1e-6
    for s, t in zip(a, b):
        assert torch.allclose(s, t, atol=1e-10, rtol=1e-8)


def test_derived_1bit_network_is_the_same_in_nhwc():
    torch.manual_seed(2)
    net = DerivedNetwork(DDPNAS_MCN_2, binary=True, in_channels=1, num_classes=5, C=4,
                         layers=4, layout="cifar").to(DT)
    nchw, nhwc = _pair(net)
    x, y = _batch(channels=1)
    _assert_same(_loss_grads_buffers(nchw, x, y),
                 _loss_grads_buffers(nhwc, x.contiguous(memory_format=CL), y))


def test_channels_last_policy():
    assert use_channels_last("cpu") and use_channels_last(torch.device("cuda"))
    assert not use_channels_last("cpu", enabled=False)
    assert not use_channels_last("meta")


def test_search_supernets_and_batches_are_channels_last_on_cpu():
    from dcpnas.search import resolve_search_config
    from dcpnas.search.run.learner import build_supernet

    cfg = resolve_search_config(preset="quick", overrides=["supernet.C=4", "supernet.layers=3"])
    net = build_supernet("child", cfg, 3, 10, torch.device("cpu"))
    assert _is_nhwc(net)
    off = resolve_search_config(preset="quick", overrides=["channels_last=false"])
    net = build_supernet("child", off, 3, 10, torch.device("cpu"))
    assert not _is_nhwc(net)
