"""Objective terms against independent oracles: KL from torch's kl_div, the tangent from a
separate autograd pass, L_R written out by hand, distances from flattened vectors."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dcpnas.binary import BinaryConv2d
from dcpnas.search import (child_parent_G, child_weight_objective, discrepancy,
                           discrepancy_direction, parent_forward)
from dcpnas.space import Supernet

DT = torch.float64


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    parent = Supernet("parent", in_channels=3, num_classes=5, C=4, layers=3).to(DT)
    child = Supernet("child", in_channels=3, num_classes=5, C=4, layers=3).to(DT)
    with torch.no_grad():
        for a in parent.arch_parameters() + child.arch_parameters():
            a.normal_(0.0, 0.5)
    return parent, child


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 8, 8, generator=g, dtype=DT), torch.randint(0, 5, (6,), generator=g)


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


# -- G ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_G_is_minus_kl_of_parent_to_child(T):
    g = torch.Generator().manual_seed(2)
    zc = torch.randn(7, 10, generator=g, dtype=DT) * 3
    zp = torch.randn(7, 10, generator=g, dtype=DT) * 3
    # kl_div(input=log q, target=log p) = Σ p (log p − log q) = KL(p ‖ q); batchmean = /B.
    expected = -F.kl_div(F.log_softmax(zc / T, 1), F.log_softmax(zp / T, 1), log_target=True,
                         reduction="batchmean")
    assert child_parent_G(zc, zp, temperature=T).item() == pytest.approx(expected.item(),
                                                                          rel=1e-12)


def test_G_detaches_the_parent_and_computes_half_precision_logits_in_fp32():
    g = torch.Generator().manual_seed(3)
    zc = torch.randn(4, 6, generator=g).requires_grad_(True)
    zp = torch.randn(4, 6, generator=g).requires_grad_(True)
    G = child_parent_G(zc, zp)
    grad_c, grad_p = torch.autograd.grad(G, [zc, zp], allow_unused=True)
    assert grad_p is None
    # ∂G/∂z_C = (p − q)/B at T = 1.
    assert torch.allclose(grad_c, (F.softmax(zp, 1) - F.softmax(zc, 1)) / 4, atol=1e-7)
    half = child_parent_G(zc.detach().bfloat16(), zp.detach().bfloat16())
    assert half.dtype == torch.float32


def test_G_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        child_parent_G(torch.zeros(2, 3), torch.zeros(2, 4))


# -- the Child's weight objective ----------------------------------------------------------------
def _hand_L_R(child):
    total = 0.0
    for m in child.modules():
        if isinstance(m, BinaryConv2d):
            b = torch.where(m.weight >= 0, 1.0, -1.0).to(m.weight)
            total = total + (m.weight - m.beta.view(-1, 1, 1, 1) * b).pow(2).sum()
    return total


def test_child_weight_objective_value(nets, batch):
    parent, child = nets
    x, y = batch
    zc = child(x)
    with torch.no_grad():
        zp = parent(x)
    loss, parts = child_weight_objective(child, zc, zp, mu=0.2, label_ce_weight=0.3, labels=y)
    G = -F.kl_div(F.log_softmax(zc, 1), F.log_softmax(zp, 1), log_target=True,
                  reduction="batchmean")
    L_R = _hand_L_R(child)
    ce = F.cross_entropy(zc, y)
    assert loss.item() == pytest.approx((-G + 0.2 * L_R + 0.3 * ce).item(), rel=1e-12)
    assert parts["G"].item() == pytest.approx(G.item(), rel=1e-12)
    assert parts["L_R"].item() == pytest.approx(L_R.item(), rel=1e-12)
    assert parts["CE"].item() == pytest.approx(ce.item(), rel=1e-12)


def test_child_weight_objective_gradient_of_reconstruction_term(nets, batch):
    """With the Parent's logits equal to the Child's, ∂G/∂z = 0, so the weight gradient is
    μ∂L_R alone: 2μ(ŵ − β∘b) for ŵ and −2μ Σ(ŵ − β∘b)∘b per output channel for β (Eq. 4.34,
    docs/METHOD.md#eq-4-34)."""
    _, child = nets
    x, _ = batch
    zc = child(x)
    loss, _ = child_weight_objective(child, zc, zc.detach(), mu=0.2)
    conv = next(m for m in child.modules() if isinstance(m, BinaryConv2d))
    gw, gb = torch.autograd.grad(loss, [conv.weight, conv.beta])
    b = torch.where(conv.weight >= 0, 1.0, -1.0).to(conv.weight)
    residual = conv.weight - conv.beta.view(-1, 1, 1, 1) * b
    assert torch.allclose(gw, 2 * 0.2 * residual, atol=1e-12)
    assert torch.allclose(gb, -2 * 0.2 * (residual * b).sum(dim=(1, 2, 3)), atol=1e-12)


# -- the Parent forward -------------------------------------------------------------------------
def test_parent_forward_tangent_is_autograd_of_minus_ce(nets, batch):
    parent, _ = nets
    x, y = batch
    parent.eval()
    try:
        reference = copy.deepcopy(parent)
        calls = []
        handle = parent.register_forward_hook(lambda *args: calls.append(1))
        logits, tangent = parent_forward(parent, x, y)
        handle.remove()
        assert len(calls) == 1  # one forward serves G's target and the tangent
        (-F.cross_entropy(reference(x), y)).backward()
        for t, a in zip(tangent, reference.arch_parameters()):
            assert torch.allclose(t, a.grad, rtol=1e-10, atol=1e-14)
        assert torch.allclose(logits, reference(x), atol=1e-12)
        assert not logits.requires_grad and not any(t.requires_grad for t in tangent)
        assert all(p.grad is None for p in parent.parameters())
    finally:
        parent.train()


def test_parent_forward_at_given_alphas_and_without_tangent(nets, batch):
    parent, _ = nets
    x, y = batch
    parent.eval()
    try:
        own = [a.detach().clone() for a in parent.arch_parameters()]
        other = [torch.randn_like(a) for a in own]  # plain tensors, no requires_grad
        logits, tangent = parent_forward(parent, x, y, alphas=other)
        ref = [a.clone().requires_grad_(True) for a in other]
        expected = torch.autograd.grad(-F.cross_entropy(parent(x, alphas=ref), y), ref)
        assert all(torch.allclose(t, e, rtol=1e-10) for t, e in zip(tangent, expected))
        assert all(torch.equal(a, b) for a, b in zip(parent.arch_parameters(), own))
        plain, none = parent_forward(parent, x, None, need_tangent=False)
        assert none is None and torch.allclose(plain, parent(x), atol=1e-12)
        assert not torch.allclose(plain, logits)
    finally:
        parent.train()


# -- D and ∂D/∂g_C --------------------------------------------------------------------------------
def _pair(seed):
    g = torch.Generator().manual_seed(seed)
    shapes = [(14, 8), (14, 8)]
    return ([torch.randn(s, generator=g, dtype=DT) for s in shapes],
            [torch.randn(s, generator=g, dtype=DT) for s in shapes])


def test_discrepancy_values():
    g_C, g_P = _pair(4)
    a, b = _flat(g_C), _flat(g_P)
    assert discrepancy(g_C, g_P, "fro").item() == pytest.approx(
        torch.linalg.vector_norm(a - b).pow(2).item(), rel=1e-12)
    assert discrepancy(g_C, g_P, "l1").item() == pytest.approx(
        torch.linalg.vector_norm(a - b, ord=1).item(), rel=1e-12)
    assert discrepancy(g_C, g_P, "cosine").item() == pytest.approx(
        1 - F.cosine_similarity(a, b, dim=0).item(), rel=1e-12)
    assert discrepancy(g_C, g_C, "cosine").item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("distance", ["fro", "l1", "cosine"])
def test_discrepancy_direction_is_the_gradient_of_D(distance):
    g_C, g_P = _pair(5)
    leaves = [g.clone().requires_grad_(True) for g in g_C]
    expected = torch.autograd.grad(discrepancy(leaves, g_P, distance), leaves)
    got = discrepancy_direction(g_C, g_P, distance)
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_unknown_distance_is_rejected():
    g_C, g_P = _pair(6)
    with pytest.raises(ValueError, match="distance"):
        discrepancy(g_C, g_P, "l2")
    with pytest.raises(ValueError, match="distance"):
        discrepancy_direction(g_C, g_P, "kl")
