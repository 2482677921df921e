"""Decoupled optimisation (Eqs. 4.51–4.53) on hand-made cases with the expected numbers written out."""

from __future__ import annotations

import pytest
import torch

from dcpnas.search import DecoupledOptimization
from dcpnas.space import PRIMITIVES, Supernet

# One cell type, E = 3 edges, M = 4 ops, every op ranked, so τ = 4 // 2 = 2.
ALPHA_T = torch.tensor([[1.0, 2.0, 3.0, 4.0],
                        [-1.0, 0.5, 2.0, 0.0],
                        [0.25, -2.0, 1.0, 1.0]])
ALPHA_T1 = torch.tensor([[0.9, 2.1, 3.0, 4.2],
                         [-1.2, 0.4, 2.0, 0.1],
                         [0.3, -2.5, 1.1, 0.9]])
PSI = torch.tensor([0.5, 2.0, 4.0])
ETA = 0.1
# Column sums of R: [3, 0, 6, 6] → ranks (descending, ties by op index) [3, 4, 1, 2]:
# columns 0 and 1 rank below τ = 2 and are backtracked.
R_HAND = torch.tensor([[1.0, 0.0, 5.0, 2.0],
                       [1.0, 0.0, 1.0, 2.0],
                       [1.0, 0.0, 0.0, 2.0]])


def _hand_made(**kw):
    dec = DecoupledOptimization(3, 4, psi_lr=10.0, num_cell_types=1, **kw)
    dec.load_state_dict({"psi": [PSI.clone()]})
    return dec


def _step(dec, R=R_HAND):
    alpha = ALPHA_T.clone()
    dec.remember([alpha])
    alpha.copy_(ALPHA_T1)  # the optimiser step
    masks = dec.apply([alpha], [R], ETA)
    return alpha, masks


def test_backtrack_column_ranking_hand_made():
    alpha, masks = _step(_hand_made())
    # α̃[e, m] = α^{t+1}[e, m] + η ψ̃_e α^t[e, m] for m ∈ {0, 1}:
    #   col 0: 0.9 + 0.1·0.5·1 = 0.95;  −1.2 + 0.1·2·(−1) = −1.4;  0.3 + 0.1·4·0.25 = 0.4
    #   col 1: 2.1 + 0.1·0.5·2 = 2.2;    0.4 + 0.1·2·0.5 = 0.5;     −2.5 + 0.1·4·(−2) = −3.3
    expected = torch.tensor([[0.95, 2.2, 3.0, 4.2],
                             [-1.4, 0.5, 2.0, 0.1],
                             [0.4, -3.3, 1.1, 0.9]])
    assert torch.allclose(alpha, expected, atol=1e-6)
    assert masks[0].tolist() == [[True, True, False, False]] * 3


def test_backtrack_edge_ranking_hand_made():
    # Per-edge ranks of R_HAND rows (τ = 2):
    #   e0 [1, 0, 5, 2] → ranks [3, 4, 1, 2] → ops 0, 1
    #   e1 [1, 0, 1, 2] → ranks [2, 4, 3, 1] → ops 1, 2   (tie 1 = 1: op 0 ranks first)
    #   e2 [1, 0, 0, 2] → ranks [2, 3, 4, 1] → ops 1, 2   (tie 0 = 0: op 1 ranks first)
    alpha, masks = _step(_hand_made(rank_scope="edge"))
    expected = torch.tensor([[0.95, 2.2, 3.0, 4.2],
                             [-1.2, 0.5, 2.4, 0.1],      # 0.4+0.1·2·0.5, 2.0+0.1·2·2
                             [0.3, -3.3, 1.5, 0.9]])     # −2.5+0.1·4·(−2), 1.1+0.1·4·1
    assert torch.allclose(alpha, expected, atol=1e-6)
    assert masks[0].tolist() == [[True, True, False, False], [False, True, True, False],
                                 [False, True, True, False]]


def test_psi_update_hand_made():
    dec = _hand_made()
    _step(dec)
    g = torch.tensor([[1.0, -1.0, 5.0, 5.0],
                      [2.0, 0.0, 5.0, 5.0],
                      [-1.0, -3.0, 5.0, 5.0]])
    # ∂L/∂ψ̃_e = Σ_{m∈{0,1}} g[e, m]·η·α^t[e, m]:
    #   e0: (1·1 + (−1)·2)·0.1 = −0.1     → ψ̃ = |0.5 − 10·(−0.1)|  = 1.5
    #   e1: (2·(−1) + 0·0.5)·0.1 = −0.2   → ψ̃ = |2 − 10·(−0.2)|    = 4.0
    #   e2: ((−1)·0.25 + (−3)(−2))·0.1 = 0.575 → ψ̃ = |4 − 5.75| = 1.75 (the |·| of Eq. 4.51)
    [d] = dec.update_psi([g])
    assert torch.allclose(d, torch.tensor([-0.1, -0.2, 0.575]), atol=1e-6)
    assert torch.allclose(dec.parameters_for_sync()[0], torch.tensor([1.5, 4.0, 1.75]), atol=1e-6)
    # The pending backtrack is consumed: a second call changes nothing.
    assert dec.update_psi([g]) is None
    assert torch.allclose(dec.psi[0], torch.tensor([1.5, 4.0, 1.75]), atol=1e-6)


def test_psi_gradient_is_the_chain_rule_of_the_backtrack():
    """Autograd through α̃(ψ̃) = α^{t+1} + η ψ̃ ⊙ α^t ⊙ mask, for L = ⟨g, α̃⟩ + ½‖α̃‖²."""
    dec = _hand_made(rank_scope="edge")
    alpha, [mask] = _step(dec)
    psi = PSI.clone().requires_grad_(True)
    alpha_tilde = ALPHA_T1 + ETA * psi.unsqueeze(1) * ALPHA_T * mask
    g0 = torch.arange(12.0).view(3, 4) - 5
    L = (g0 * alpha_tilde).sum() + 0.5 * alpha_tilde.pow(2).sum()
    expected, = torch.autograd.grad(L, psi)
    grad_alpha = g0 + alpha  # ∂L/∂α̃ at the backtracked α
    [d] = dec.update_psi([grad_alpha])
    assert torch.allclose(d, expected, atol=1e-5)


def test_apply_needs_remember_and_update_without_apply_is_a_no_op():
    dec = _hand_made()
    with pytest.raises(RuntimeError, match="remember"):
        dec.apply([ALPHA_T.clone()], [R_HAND], ETA)
    assert dec.update_psi([torch.ones(3, 4)]) is None
    assert torch.equal(dec.psi[0], PSI)


def test_forget_drops_the_pending_backtrack_but_keeps_psi():
    dec = _hand_made()
    _step(dec)
    dec.forget()
    assert dec.update_psi([torch.ones(3, 4)]) is None
    assert torch.equal(dec.psi[0], PSI)
    with pytest.raises(RuntimeError, match="remember"):
        dec.apply([ALPHA_T.clone()], [R_HAND], ETA)


def test_state_dict_round_trip_keeps_the_pending_backtrack():
    dec = _hand_made()
    _step(dec)
    other = DecoupledOptimization(3, 4, psi_lr=10.0, num_cell_types=1)
    other.load_state_dict(dec.state_dict())
    g = torch.ones(3, 4)
    assert torch.allclose(other.update_psi([g])[0], dec.update_psi([g])[0])
    assert torch.equal(other.psi[0], dec.psi[0])


def test_defaults_on_a_child_supernet():
    """8 DCP-NAS primitives: only the 4 parametric ops are ranked, τ = 2; the parameter-free
    columns join only with include_parameter_free."""
    torch.manual_seed(0)
    child = Supernet("child", in_channels=3, num_classes=5, C=4, layers=3)
    R = child.op_weight_sq_norms()
    parametric = [PRIMITIVES.index(n) for n in
                  ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")]
    dec = DecoupledOptimization(psi_lr=1e-3)
    assert dec.tau == 2 and dec.parametric_ops == sorted(parametric)
    for r in R:
        col = r.sum(0)
        two_smallest = sorted(parametric, key=lambda m: col[m].item())[:2]
        expected = torch.zeros(8, dtype=torch.bool)
        expected[two_smallest] = True
        assert torch.equal(dec.mask(r)[0], expected)
        with_free = DecoupledOptimization(psi_lr=1e-3, include_parameter_free=True).mask(r)[0]
        free = [i for i in range(8) if i not in parametric]
        assert with_free[free].all() and torch.equal(with_free[parametric], expected[parametric])
    alphas = [a.detach().clone() for a in child.arch_parameters()]
    dec.remember(alphas)
    before = [a.clone() for a in alphas]
    masks = dec.apply(alphas, R, eta=0.5)
    for a, b, m in zip(alphas, before, masks):
        assert torch.allclose(a, b + 0.5 * 1e-3 * b * m)
