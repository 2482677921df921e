"""The parts of the search that make DCP-NAS differ from CP-NAS (docs/METHOD.md, Decisions T, C,
L, O, R): the teacher's normalisation, a D that turns the step, a decoupled step that acts, and G's
share of the Child's weight update. Each against a hand-made case or an independent computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dcpnas.search import resolve_search_config
from dcpnas.search.maths.architect import Architect, ChildArchitect, Teacher
from dcpnas.search.maths.curvature import GGN, Fisher
from dcpnas.search.maths.decoupled import DecoupledOptimization
from dcpnas.search.maths.discrepancy import make_distance
from dcpnas.search.run.learner import build_learner
from dcpnas.search.maths.objective import parent_forward, teaching
from dcpnas.search.run.steps import balanced_weight_update, build_child_architect, build_teacher
from dcpnas.space import Supernet


def _learners(seed=0, **over):
    cfg = resolve_search_config(preset="quick", overrides=[
        "supernet.C=2", "device=cpu", *[f"{k}={v}" for k, v in over.items()]])
    torch.manual_seed(seed)
    P = build_learner("parent", cfg, 1, 10, torch.device("cpu"), epochs=2, decoupled=True)
    C = build_learner("child", cfg, 1, 10, torch.device("cpu"), epochs=2, decoupled=True)
    C.net.load_arch(P.alphas)
    return cfg, P, C


def _batch(n=16, side=8, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, side, side, generator=g), torch.randint(0, 10, (n,), generator=g)


def _bn_buffers(net):
    return {k: v.clone() for k, v in net.state_dict().items()
            if "running" in k or "num_batches" in k}


# -- Decision T: the teacher ----------------------------------------------------------------------
def test_teacher_uses_batch_statistics_and_leaves_running_ones_untouched():
    cfg, P, _ = _learners()
    x, y = _batch()
    before = _bn_buffers(P.net)
    logits, tangent = parent_forward(P.net, x, y, bn="batch")
    after = _bn_buffers(P.net)
    assert before and all(torch.equal(before[k], after[k]) for k in before)
    # Oracle: the same forward in plain train mode normalises with batch statistics too (and
    # would update the running ones); its logits are the teacher's.
    P.net.train(True)
    with torch.no_grad():
        plain = P.net(x)
    assert torch.allclose(logits, plain, atol=1e-6)
    assert not all(torch.equal(before[k], v) for k, v in _bn_buffers(P.net).items())
    # ... and differ from the eval-mode (running statistics) forward.
    with teaching(P.net, "running"), torch.no_grad():
        running = P.net(x)
    assert not torch.allclose(logits, running, atol=1e-3)
    assert tangent is not None and all(t.shape == a.shape for t, a in zip(tangent, P.alphas))


def test_teacher_logits_with_and_without_tangent_agree():
    cfg, P, _ = _learners()
    x, y = _batch()
    t = build_teacher(P, cfg, torch.device("cpu"))
    a, g = t.logits_and_tangent(x, y, need_tangent=True)
    b, none = t.logits_and_tangent(x, y, need_tangent=False)
    assert none is None and g is not None
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, t.logits(x), atol=1e-6)


# -- Decisions C and L: D turns the Child's step ---------------------------------------------------
def test_default_child_step_turns_away_from_minus_g_C():
    """With the defaults (ggn, λ on the tangent-scaled D) the α̂-step is not a rescaled −g_C."""
    cfg, P, C = _learners(seed=1)
    assert isinstance(build_child_architect(C, cfg, torch.device("cpu")).curvature, GGN)
    x, y = _batch(seed=4)
    teacher = build_teacher(P, cfg, torch.device("cpu"))
    logits, g_P = teacher.logits_and_tangent(x, y, need_tangent=True)
    arch = build_child_architect(C, cfg, torch.device("cpu"))
    ag = arch.gradient(x, y, logits, g_P)
    assert ag.cos < 0.999 and ag.rho > 0
    # The book-literal rank-1 Fisher can only rescale the step: cos = 1 to float precision.
    fisher = ChildArchitect(C, lam=cfg.lam, distance=arch.distance, curvature=Fisher(1, -1.0))
    assert fisher.gradient(x, y, logits, g_P).cos == pytest.approx(1.0, abs=1e-6)


def test_tangent_scale_makes_lambda_independent_of_the_gradient_scale():
    """D/‖g_P‖²: scaling both gradients by k leaves ∂D/∂g_C·‖g‖ unchanged (raw D: ×k)."""
    g_C = [torch.tensor([1.0, -2.0]), torch.tensor([0.5])]
    g_P = [torch.tensor([0.5, 1.0]), torch.tensor([-1.0])]
    for name in ("fro", "l1"):
        scaled, raw = make_distance(name, "tangent"), make_distance(name, "none")
        d1 = torch.cat(scaled.direction(g_C, g_P))
        d10 = torch.cat(scaled.direction([10 * g for g in g_C], [10 * g for g in g_P]))
        power = 1 if name == "fro" else 0  # raw ∂D/∂g_C is linear (fro) or constant (l1) in k
        assert torch.allclose(d10 * 10, d1, rtol=1e-6)
        r1 = torch.cat(raw.direction(g_C, g_P))
        r10 = torch.cat(raw.direction([10 * g for g in g_C], [10 * g for g in g_P]))
        assert torch.allclose(r10, r1 * 10 ** power, rtol=1e-6)
    # Hand-worked value: fro, ‖g_C − g_P‖² = 0.25 + 9 + 2.25 = 11.5, ‖g_P‖² = 0.25 + 1 + 1 = 2.25.
    assert make_distance("fro", "tangent").value(g_C, g_P).item() == pytest.approx(11.5 / 2.25)


def test_lambda_zero_step_computes_no_tangent():
    """CP-NAS (λ = 0) asks the teacher for no tangent (no Parent backward) unless D is logged."""
    from dcpnas.search.run.steps import dcp_arch_step

    cfg, P, C = _learners(method="cpnas")
    calls = []

    class Spy(Teacher):
        def logits_and_tangent(self, x, y, *, need_tangent):
            calls.append(need_tangent)
            return super().logits_and_tangent(x, y, need_tangent=need_tangent)

    arch = build_child_architect(C, cfg, torch.device("cpu"))
    assert arch.lam == 0 and not arch.needs_tangent
    x, y = _batch()
    spy = Spy(P, bn=cfg.objective.teacher_bn)
    out = dcp_arch_step(arch, spy)(x, y, x, y)
    assert calls == [False] and "D" not in out and out["rho"] == 0.0
    dcp_arch_step(arch, spy, log_discrepancy=True)(x, y, x, y)
    assert calls[-1] is True


# -- Decision O: the decoupled step acts, by the ratio it logs -------------------------------------
class _OneAlpha(nn.Module):
    """Stand-in learner net: α (2 edges × 3 ops, one cell type) and fixed op norms R."""

    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]]))

    def arch_parameters(self):
        return [self.alpha]

    def op_weight_sq_norms(self):
        return [torch.tensor([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])]


class _Learner:
    name = "child"

    def __init__(self, parametrization):
        self.net = _OneAlpha()
        self.a_opt = torch.optim.SGD(self.net.arch_parameters(), lr=0.1)
        self.decoupled = DecoupledOptimization(2, 3, psi_lr=0.5, psi_init=0.2, tau=1,
                                               parametric_ops=[0, 1, 2], num_cell_types=1,
                                               parametrization=parametrization)

    @property
    def alphas(self):
        return self.net.arch_parameters()

    def arch_lr(self):
        return 0.1

    def weight_lr(self):
        return 0.01


@pytest.mark.parametrize("parametrization, eta", [("phi", 1.0), ("book", 0.1 * 0.01)])
def test_decoupled_step_moves_alpha_by_the_logged_ratio(parametrization, eta):
    L = _Learner(parametrization)
    a0 = L.net.alpha.detach().clone()
    g = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 1.0]])
    out = Architect(L).apply([g.clone()])
    # By hand: SGD step a1 = a0 − 0.1 g; column ranks by R summed over edges (6, 2, 4) are
    # op0 = 1, op2 = 2, op1 = 3; τ = 1 masks ops 2 and 1; backtrack c·ψ·a0 on them.
    a1 = a0 - 0.1 * g
    mask = torch.tensor([[False, True, True], [False, True, True]])
    expected = a1 + eta * 0.2 * a0 * mask
    assert torch.allclose(L.net.alpha.detach(), expected, atol=1e-7)
    ratio = (expected - a1).norm() / (a1 - a0).norm()
    assert out["child_backtrack_ratio"] == pytest.approx(ratio.item(), rel=1e-5)
    assert out["child_decoupled_coef"] == pytest.approx(0.2)
    # The next step learns the coefficient by Eq. 4.51: ψ ← |ψ − η_ψ Σ_{m∈mask} g·η·α_prev|.
    g2 = torch.tensor([[0.3, -0.2, 0.4], [0.1, 0.6, -0.3]])
    Architect(L).apply([g2.clone()])
    d = (g2 * eta * a0 * mask).sum(dim=1)
    assert torch.allclose(L.decoupled.psi[0], (0.2 - 0.5 * d).abs(), atol=1e-7)


def test_phi_backtrack_acts_where_the_book_form_is_inert():
    ratios = {}
    for p in ("phi", "book"):
        L = _Learner(p)
        ratios[p] = Architect(L).apply([torch.ones(2, 3)])["child_backtrack_ratio"]
    assert 0.01 < ratios["phi"] and ratios["book"] < 1e-2 * ratios["phi"]


# -- Decision R: G's share of the Child's weight update --------------------------------------------
class _Quad(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0, -1.0]))


class _WeightLearner:
    def __init__(self):
        self.net = _Quad()
        self.w_opt = torch.optim.SGD(self.net.parameters(), lr=1.0)

    @property
    def weights(self):
        return list(self.net.parameters())


@pytest.mark.parametrize("cap", [0.0, 1.0, 0.5])
def test_reconstruction_gradient_is_capped_relative_to_G(cap):
    L = _WeightLearner()
    w0 = L.net.w.detach().clone()
    a = torch.tensor([0.1, 0.0, 0.2])               # ∇(distill) = a
    distill = (a * L.net.w).sum()
    reconstruction = 2.0 * L.net.w.pow(2).sum()     # ∇ = 4w = (4, 8, −4), norm √96
    share = balanced_weight_update(L, distill, reconstruction, cap=cap, grad_clip=0)
    g_R = 4 * w0
    if cap:
        g_R = g_R * min(1.0, cap * a.norm().item() / g_R.norm().item())
    expected_share = a.pow(2).sum() / (a.pow(2).sum() + g_R.pow(2).sum())
    assert share == pytest.approx(expected_share.item(), rel=1e-6)
    assert torch.allclose(L.net.w.detach(), w0 - (a + g_R), atol=1e-6)
    if cap:
        assert share >= 1 / (1 + cap * cap) - 1e-9


def test_search_logs_every_diagnostic(tmp_path, tiny_npz):
    """ρ, cos, backtrack ratios, G share and the teacher's accuracy reach log.jsonl and summary."""
    import json

    from dcpnas.search import search

    result = search(preset="quick", out=tmp_path / "run", quiet=True, overrides=[
        f"data.dataset=npz:{tiny_npz}", "data.limit=64", "data.batch_size=8", "data.resolution=0",
        "supernet.C=2", "schedule.rounds=1", "schedule.steps_per_epoch=2", "data.eval_batches=1",
        "log_every=1", "tensorboard=false"])
    steps = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    child = [r for r in steps if r.get("event") == "step" and r.get("phase") == "child"]
    parent = [r for r in steps if r.get("event") == "step" and r.get("phase") == "parent"]
    for key in ("rho", "cos_step_gC", "child_backtrack_ratio", "child_decoupled_coef", "G_share",
                "D"):
        assert all(math.isfinite(r[key]) for r in child), key
    assert all("parent_backtrack_ratio" in r for r in parent)
    epochs = [r for r in steps if r.get("event") == "epoch"]
    assert "teacher_acc" in epochs[1] and "parent_acc" in epochs[0]
    diag = result.summary["diagnostics"]
    assert {"rho", "cos_step_gC", "G_share", "child_backtrack_ratio", "teacher_acc"} <= set(diag)


def test_a_diverged_search_stops_with_one_line(tmp_path, tiny_npz):
    """darts at optim.w.lr=1e6 diverges (a loss of 1e16 if unchecked) and stops with exit 2."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dcpnas", "search", "--preset", "quick", "--method",
                        "darts", "--quiet", "--out", str(tmp_path / "run"), "--set",
                        f"data.dataset=npz:{tiny_npz}", "data.limit=64", "data.batch_size=8",
                        "data.resolution=0", "supernet.C=2", "schedule.rounds=2",
                        "optim.w.optimizer=sgd", "optim.w.lr=1e6", "optim.w.lr_min=0",
                        "tensorboard=false"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcpnas: error:") and "Traceback" not in r.stderr
    assert "diverged" in lines[0] or "NaN" in lines[0] or "nan" in lines[0] or "inf" in lines[0]
