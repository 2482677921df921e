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


@pytest.mark.parametrize("stride,side", [(1, 8), (2, 8), (2, 7)])
def test_partial_edge_by_hand(stride, side):
    torch.manual_seed(0)
    K, C = 4, 8
    edge = MixedOp(C, stride, OpStyle(binary=False, scope="official", affine=False), partial=K)
    edge.eval()
    x = torch.randn(2, C, side, side)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    got = edge(x, w)
    xa, xb = x[:, : C // K], x[:, C // K:]
    mixed = sum(w[i] * op(xa) for i, op in zip(edge.candidate_indices, edge.ops))
    if stride == 2:  # the 2×2 max over each window; an odd side's last window is its last row/column
        xb = F.pad(xb, (0, side % 2, 0, side % 2), value=float("-inf"))
        xb = xb.unfold(2, 2, 2).unfold(3, 2, 2).amax(dim=(-1, -2))
    expected = channel_shuffle(torch.cat([mixed, xb], 1), K)
    out = -(-side // stride)
    assert got.shape == (2, C, out, out)
    assert torch.allclose(got, expected, atol=1e-6)
    # Its ops are built at C/K channels: about 1/K of the parameters of a full edge.
    full = MixedOp(C, stride, OpStyle(binary=False, scope="official", affine=False))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(edge) < n(full) / 2


@pytest.mark.parametrize("kind", ["parent", "child"])
def test_supernet_with_partial_channels_trains(kind):
    torch.manual_seed(1)
    net = Supernet(kind, in_channels=1, num_classes=10, C=4, layers=3, partial_channels=2)
    x, y = torch.randn(4, 1, 14, 14), torch.randint(0, 10, (4,))  # 14 → 7 → 4: an odd reduction
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


# -- edge normalisation (PC-DARTS's β) ------------------------------------------------------------
def test_edge_weights_are_a_softmax_per_node():
    from dcpnas.space.cell import edge_weights

    beta = torch.arange(14.0) / 7
    got = edge_weights(beta)
    start = 0
    for n in (2, 3, 4, 5):                       # node k has k + 2 incoming edges
        seg = beta[start:start + n]
        assert torch.allclose(got[start:start + n], seg.exp() / seg.exp().sum())
        start += n


def test_edge_normalised_cell_by_hand():
    from dcpnas.space.cell import SearchCell, edge_weights

    torch.manual_seed(3)
    cell = SearchCell(4, 4, 4, False, False, OpStyle(binary=True, scope="official", affine=False), 2)
    cell.eval()
    s0, s1 = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.randn(14, len(PRIMITIVES)), -1)
    e = edge_weights(torch.randn(14))
    states, offset = list(cell.inputs(s0, s1)), 0
    for _ in range(4):
        states.append(sum(e[offset + j] * cell.edges[offset + j](h, w[offset + j])
                          for j, h in enumerate(states)))
        offset += len(states) - 1
    assert torch.allclose(cell(s0, s1, w, edges=e), torch.cat(states[-4:], 1), atol=1e-6)
    assert not torch.allclose(cell(s0, s1, w), torch.cat(states[-4:], 1), atol=1e-3)


def test_genotype_ranks_edges_by_alpha_times_edge_weight():
    from dcpnas.space import derive_genotype

    a = torch.zeros(14, len(PRIMITIVES))
    # Node 1 (rows 2, 3, 4 = inputs 0, 1, 2): one op per row, strongest on input 0, weakest on 2.
    sep, dil, avg = (PRIMITIVES.index(n) for n in ("sep_conv_3x3", "dil_conv_3x3", "avg_pool_3x3"))
    a[2, sep], a[3, dil], a[4, avg] = 3.0, 2.0, 1.0
    plain = derive_genotype(a, a)
    assert plain.normal[2:4] == (("sep_conv_3x3", 0), ("dil_conv_3x3", 1))
    beta = torch.zeros(14)
    beta[4] = 3.0                                # β favours input 2 of node 1
    # softmax weights of the rows' best ops: p3 = e³/(e³+7), p2 = e²/(e²+7), p1 = e/(e+7); edge
    # weights softmax(0, 0, 3): input 2 gets e³/(2+e³), so input 2 now beats input 1 and input 0.
    got = derive_genotype(a, a, beta, beta)
    assert got.normal[2:4] == (("avg_pool_3x3", 2), ("sep_conv_3x3", 0))
    assert got.normal[:2] == plain.normal[:2] and got.normal[4:] == plain.normal[4:]


def test_exact_child_gradient_with_edge_normalization_equals_autograd():
    from dcpnas.search.maths.child_gradient import child_arch_gradient
    from dcpnas.search.maths.curvature import Exact, consistent_derivatives
    from dcpnas.search.maths.discrepancy import discrepancy, make_distance
    from dcpnas.search.maths.objective import child_objective_per_sample, parent_forward

    torch.manual_seed(5)
    dt = torch.float64
    parent, child = (Supernet(k, in_channels=3, num_classes=5, C=4, layers=3, partial_channels=2,
                              edge_normalization=True).to(dt) for k in ("parent", "child"))
    with torch.no_grad():
        for a in child.arch_parameters() + parent.arch_parameters():
            a.normal_(0.0, 0.5)
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(6, 3, 8, 8, generator=g, dtype=dt), torch.randint(0, 5, (6,), generator=g)
    parent_logits, tangent = parent_forward(parent, x, y)
    assert len(tangent) == 4
    got = child_arch_gradient(child, x, parent_logits, tangent, lam=1.0,
                              distance=make_distance("fro", "none"), curvature=Exact())
    alphas = child.arch_parameters()
    with consistent_derivatives(child):
        logits = child(x)
    G = child_objective_per_sample(logits, parent_logits).mean()
    g_C = torch.autograd.grad(G, alphas, create_graph=True)
    expected = torch.autograd.grad(-G + discrepancy(g_C, tangent, "fro"), alphas)
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    assert (flat(got.grad) - flat(expected)).norm() / flat(expected).norm() < 1e-6
    assert flat(got.grad)[-28:].abs().sum() > 0          # β gets its gradient too


def test_edge_normalization_search_end_to_end(tmp_path, tiny_npz):
    from dcpnas.errors import ConfigError
    from dcpnas.search import resolve_search_config, search

    over = [f"data.dataset=npz:{tiny_npz}", "data.limit=32", "data.batch_size=8", "supernet.C=2",
            "schedule.rounds=1", "data.eval_batches=1", "tensorboard=false",
            "supernet.edge_normalization=true"]
    res = search(preset="quick", overrides=over, out=tmp_path / "run", quiet=True)
    assert res.completed
    alphas = res.history[-1]["alphas"]
    assert [len(a) for a in alphas] == [14, 14, 14, 14] and isinstance(alphas[2][0], float)
    assert 0 < res.history[-1]["alpha_entropy"] <= 2.08            # over α only
    assert res.genotype is not None
    with pytest.raises(ConfigError, match="edge_normalization"):
        resolve_search_config(preset="quick", method="random",
                              overrides=["supernet.edge_normalization=true"])
