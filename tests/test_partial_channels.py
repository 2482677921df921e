"""PC-DARTS partial channel connection (supernet.partial_channels): the shuffle is the stated
permutation, a mixed edge computes Σ w·op on the first C/K channels and passes the rest, K = 1 is
the plain DARTS edge, and both supernets train through it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dcpnas.space import PRIMITIVES, Supernet
from dcpnas.space.mixed import MixedOp, channel_shuffle
from dcpnas.space.primitives import OpStyle


def test_channel_shuffle_is_the_group_transpose():
    x = torch.arange(6.0).view(1, 6, 1, 1)          # channels 0..5 in 2 groups of 3
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert torch.equal(channel_shuffle(x, 1), x)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_edge_by_hand(stride):
    torch.manual_seed(0)
    K, C = 4, 8
    edge = MixedOp(C, stride, OpStyle(binary=False, scope="official", affine=False), partial=K)
    edge.eval()
    x = torch.randn(2, C, 8, 8)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    got = edge(x, w)
    xa, xb = x[:, : C // K], x[:, C // K:]
    mixed = sum(w[i] * op(xa) for i, op in zip(edge.candidate_indices, edge.ops))
    if stride == 2:
        xb = F.max_pool2d(xb, 2, 2)
    expected = channel_shuffle(torch.cat([mixed, xb], 1), K)
    assert got.shape == (2, C, 8 // stride, 8 // stride)
    assert torch.allclose(got, expected, atol=1e-6)
    # Its ops are built at C/K channels: about 1/K of the parameters of a full edge.
    full = MixedOp(C, stride, OpStyle(binary=False, scope="official", affine=False))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(edge) < n(full) / 2


@pytest.mark.parametrize("kind", ["parent", "child"])
def test_supernet_with_partial_channels_trains(kind):
    torch.manual_seed(1)
    net = Supernet(kind, in_channels=1, num_classes=10, C=4, layers=3, partial_channels=2)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    loss = F.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, net.arch_parameters())
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    R = net.op_weight_sq_norms()
    assert R[0].shape == (14, len(PRIMITIVES)) and R[0].sum() > 0
    with pytest.raises(ValueError, match="divide"):
        Supernet(kind, C=6, layers=3, partial_channels=4)


def test_partial_channels_config_is_validated():
    from dcpnas.errors import ConfigError
    from dcpnas.search import resolve_search_config

    cfg = resolve_search_config(preset="quick", overrides=["supernet.partial_channels=2"])
    assert cfg.supernet.partial_channels == 2
    with pytest.raises(ConfigError, match="partial_channels"):
        resolve_search_config(preset="quick", overrides=["supernet.partial_channels=3"])
