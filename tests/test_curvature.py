"""Curvature products and the Child's α̂-gradient against independent oracles (float64).

Oracles: autograd of the full objective −G + λD (D built from a create_graph gradient), the full
Hessian of a small smooth model, an explicit Jᵀ H_z J assembled from the full Jacobian, and Fisher
products assembled from micro-batch gradients taken by separate backward passes.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn as nn
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

from dcpnas.search.maths.curvature import (CURVATURES, GGN, ChildGraph, Exact, Fisher,
                                    curvature_from_config, fresh_ggn_product, make_curvature,
                                    subbatch_size)
from dcpnas.search import (child_arch_gradient, child_objective_per_sample,
                           consistent_derivatives, discrepancy,
                           discrepancy_direction, exact_hvp, frozen_bn_statistics, ggn_product,
                           microbatch_gradients, parent_forward)
from dcpnas.search.maths.discrepancy import make_distance
from dcpnas.space import Supernet
from dcpnas.space.ops import PReLU

FRO = make_distance("fro")

DT = torch.float64


# -- models ---------------------------------------------------------------------------------------
class TinyMixture(nn.Module):
    """A smooth, BN-free model with the Supernet's α interface (2 α tensors, E=3 edges, M=4 ops).

    Each "cell type" is a chain of E mixed edges h ← Σ_m softmax(α[e])_m tanh(W_{e,m} h); the
    normal α drives the first chain, the reduce α the second.
    """

    def __init__(self, features=5, classes=4, edges=3, ops=4):
        super().__init__()
        self.alpha_normal = nn.Parameter(0.5 * torch.randn(edges, ops))
        self.alpha_reduce = nn.Parameter(0.5 * torch.randn(edges, ops))
        self.W = nn.Parameter(torch.randn(2, edges, ops, features, features) / features ** 0.5)
        self.head = nn.Linear(features, classes)

    def arch_parameters(self):
        return [self.alpha_normal, self.alpha_reduce]

    def forward(self, x, alphas=None):
        alphas = self.arch_parameters() if alphas is None else alphas
        h = x
        for c, a in enumerate(alphas):
            for e in range(a.shape[0]):
                w = F.softmax(a[e], dim=0)
                h = sum(w[m] * torch.tanh(h @ self.W[c, e, m].T) for m in range(a.shape[1]))
        return self.head(h)


def _supernet(kind, seed):
    torch.manual_seed(seed)
    net = Supernet(kind, in_channels=3, num_classes=5, C=4, layers=3).to(DT)
    with torch.no_grad():  # α away from uniform, so curvature is not degenerate
        for a in net.arch_parameters():
            a.normal_(0.0, 0.5)
    return net


@pytest.fixture(scope="module")
def nets():
    return _supernet("parent", 0), _supernet("child", 1)


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 8, 8, generator=g, dtype=DT)
    y = torch.randint(0, 5, (8,), generator=g)
    return x, y


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def _rel(a, b):
    a, b = _flat(a), _flat(b)
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _cos(a, b):
    return F.cosine_similarity(_flat(a), _flat(b), dim=0).item()


def _g_C(net, x, parent_logits, *, create_graph=False, **kw):
    """(logits, ∂G̃/∂α̂); with create_graph under the exact path's derivative convention."""
    alphas = net.arch_parameters()
    with consistent_derivatives(net) if create_graph else contextlib.nullcontext():
        logits = net(x)
    G = child_objective_per_sample(logits, parent_logits, **kw).mean()
    return logits, torch.autograd.grad(G, alphas, create_graph=create_graph, retain_graph=True)


# -- the exact path ------------------------------------------------------------------------------
@pytest.mark.parametrize("distance, lam, scale", [
    ("fro", 5e-3, "none"), ("fro", 1.0, "none"), ("l1", 1.0, "none"), ("cosine", 1.0, "none"),
    ("fro", 1.0, "tangent"), ("l1", 1.0, "tangent"), ("cosine", 1.0, "tangent")])
def test_exact_gradient_equals_autograd_of_full_objective(nets, batch, distance, lam, scale):
    parent, child = nets
    x, y = batch
    parent_logits, tangent = parent_forward(parent, x, y)
    got = child_arch_gradient(child, x, parent_logits, tangent, lam=lam,
                              distance=make_distance(distance, scale), curvature=Exact())
    # Oracle: build D from a create_graph gradient and differentiate −G + λD directly (with the
    # PReLU kink convention that the exact path uses; see test_prelu_derivative_conventions).
    alphas = child.arch_parameters()
    with consistent_derivatives(child):
        logits = child(x)
    G = child_objective_per_sample(logits, parent_logits).mean()
    g_C = torch.autograd.grad(G, alphas, create_graph=True)
    D = discrepancy(g_C, tangent, distance)
    if scale == "tangent":  # Decision L: D over the tangent's own size, a constant for α̂
        flat_P = torch.cat([t.reshape(-1) for t in tangent])
        D = D / {"fro": flat_P.pow(2).sum(), "l1": flat_P.abs().sum(), "cosine": 1.0}[distance]
    expected = torch.autograd.grad(-G + lam * D, alphas)
    assert _rel(got.grad, expected) < 1e-5
    assert got.D == pytest.approx(D.item(), rel=1e-10)
    assert got.G == pytest.approx(G.item(), rel=1e-12)
    if lam == 1.0:  # the curvature term is not negligible, so the check above has teeth
        assert _rel(got.grad, [-g for g in got.g_C]) > 1e-2
        rho = lam * _flat(got.curvature_term).norm() / _flat(got.g_C).norm()
        assert got.rho == pytest.approx(rho.item(), rel=1e-9)
        assert got.cos == pytest.approx(_cos(got.grad, [-g for g in got.g_C]), abs=1e-9)


def test_exact_gradient_with_label_term_and_temperature(nets, batch):
    parent, child = nets
    x, y = batch
    parent_logits, tangent = parent_forward(parent, x, y)
    kw = dict(temperature=2.0, label_ce_weight=0.5, labels=y)
    got = child_arch_gradient(child, x, parent_logits, tangent, lam=1.0, distance=FRO,
                              curvature=Exact(), **kw)
    alphas = child.arch_parameters()
    with consistent_derivatives(child):
        logits = child(x)
    T = 2.0
    G = -F.kl_div(F.log_softmax(logits / T, 1), F.log_softmax(parent_logits / T, 1),
                  log_target=True, reduction="batchmean")
    G_tilde = G - 0.5 * F.cross_entropy(logits, y)
    g_C = torch.autograd.grad(G_tilde, alphas, create_graph=True)
    D = sum((g - p).pow(2).sum() for g, p in zip(g_C, tangent))
    expected = torch.autograd.grad(-G_tilde + D, alphas)
    assert _rel(got.grad, expected) < 1e-5
    assert got.G == pytest.approx(G.item(), rel=1e-10)


def test_exact_hvp_equals_full_hessian_of_smooth_model():
    torch.manual_seed(3)
    net = TinyMixture().to(DT)
    x = torch.randn(6, 5, dtype=DT)
    parent_logits = torch.randn(6, 4, dtype=DT)
    shapes = [a.shape for a in net.arch_parameters()]

    def G_of(flat):
        a = list(torch.split(flat, [s.numel() for s in shapes]))
        a = [t.view(s) for t, s in zip(a, shapes)]
        return child_objective_per_sample(net(x, alphas=a), parent_logits).mean()

    H = torch.autograd.functional.hessian(G_of, _flat(net.arch_parameters()).detach())
    v = [torch.randn(s, dtype=DT) for s in shapes]
    _, g_C = _g_C(net, x, parent_logits, create_graph=True)
    hv = exact_hvp(g_C, net.arch_parameters(), v)
    assert _rel(hv, [H @ _flat(v)]) < 1e-10


def test_exact_path_ignores_autocast(nets, batch):
    """The exact path runs in the model's precision even inside an autocast region."""
    parent, child = nets
    x, y = batch
    child32, parent32, x32 = copy.deepcopy(child).float(), copy.deepcopy(parent).float(), x.float()
    parent_logits, tangent = parent_forward(parent32, x32, y)
    plain = child_arch_gradient(child32, x32, parent_logits, tangent, lam=1.0, distance=FRO,
                                curvature=Exact())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = child_arch_gradient(child32, x32, parent_logits, tangent, lam=1.0, distance=FRO,
                                   curvature=Exact())
        assert child32(x32).dtype == torch.bfloat16  # autocast is really on around the call
    assert all(g.dtype == torch.float32 for g in auto.grad)
    assert _rel(auto.grad, plain.grad) < 1e-5


# -- λ = 0: CP-NAS ---------------------------------------------------------------------------------
@pytest.mark.parametrize("curvature", ["exact", "ggn", "fisher"])
def test_lambda_zero_is_cp_nas_and_skips_curvature(nets, batch, curvature, monkeypatch):
    parent, child = nets
    x, y = batch
    parent_logits, tangent = parent_forward(parent, x, y)

    def forbidden(*args, **kwargs):
        raise AssertionError("λ = 0 must not compute a curvature product")

    for cls in CURVATURES.values():
        monkeypatch.setattr(cls, "product", forbidden)
    got = child_arch_gradient(child, x, parent_logits, tangent, lam=0.0, distance=FRO,
                              curvature=make_curvature(curvature, fisher_microbatches=4))
    assert got.curvature_term is None
    assert all(torch.equal(g, -c) for g, c in zip(got.grad, got.g_C))
    _, g_C = _g_C(child, x, parent_logits)
    assert _rel(got.grad, [-g for g in g_C]) < 1e-12


# -- GGN -------------------------------------------------------------------------------------------
def _explicit_ggn_products(net, x, v, settings):
    """Σ_b J_bᵀ H_b J_b v for each (temperature, label_ce_weight) in ``settings``, from the full
    Jacobian (reverse mode) and explicit per-sample logit Hessians."""
    alphas = net.arch_parameters()
    shapes = [a.shape for a in alphas]

    def logits_of(flat):
        a = [t.view(s) for t, s in zip(torch.split(flat, [s.numel() for s in shapes]), shapes)]
        return net(x, alphas=a)

    flat = _flat(alphas).detach()
    with torch.no_grad():
        z = logits_of(flat)
    J = torch.autograd.functional.jacobian(logits_of, flat, vectorize=True)  # B × N × d
    B, N = z.shape
    out = []
    for T, w in settings:
        total = torch.zeros(flat.numel(), dtype=DT)
        for b in range(B):
            q = F.softmax(z[b] / T, 0)
            H = -(torch.diag(q) - torch.outer(q, q)) / (B * T ** 2)
            q1 = F.softmax(z[b], 0)
            H = H - w * (torch.diag(q1) - torch.outer(q1, q1)) / B
            total += J[b].T @ (H @ (J[b] @ _flat(v)))
        out.append([total])
    return out


def test_ggn_equals_explicit_jacobian_product_on_child(nets, batch):
    _, child = nets
    x, _ = batch
    x = x[:4]
    torch.manual_seed(4)
    v = [torch.randn_like(a) for a in child.arch_parameters()]
    settings = [(1.0, 0.0), (2.0, 0.5)]
    expected = _explicit_ggn_products(child, x, v, settings)
    logits = child(x)
    for (T, w), exp in zip(settings, expected):
        got = ggn_product(child, x, child.arch_parameters(), v, child_logits=logits,
                          temperature=T, label_ce_weight=w, retain_graph=True)
        assert _rel(got, exp) < 1e-10
    # Without attached logits it runs its own forward; the result is the same ...
    buffers = [b.clone() for b in child.buffers()]
    again = ggn_product(child, x, child.arch_parameters(), v, temperature=2.0, label_ce_weight=0.5)
    assert _rel(again, expected[1]) < 1e-10
    # ... and the curvature forwards leave the BN running statistics alone.
    assert all(torch.equal(a, b) for a, b in zip(buffers, child.buffers()))


@pytest.mark.parametrize("T,w", [(1.0, 0.0), (2.0, 0.5)])
def test_reverse_mode_ggn_equals_explicit_jacobian_product_on_child(nets, batch, T, w):
    """J v as the double VJP d⟨Jᵀu, v⟩/du on the g_C backward's graph (the default) is the
    explicit-Jacobian GGN product, and the whole α̂-gradient equals the forward-mode one."""
    parent, child = nets
    x, y = batch
    x, y = x[:4], y[:4]
    torch.manual_seed(4)
    v = [torch.randn_like(a) for a in child.arch_parameters()]
    [expected] = _explicit_ggn_products(child, x, v, [(T, w)])
    alphas = child.arch_parameters()
    with consistent_derivatives(child):
        logits = child(x, alphas=alphas)
        u = torch.randn_like(logits).requires_grad_(True)
        g = torch.autograd.grad(logits, alphas, grad_outputs=u, create_graph=True)
        got = ggn_product(child, x, alphas, v, child_logits=logits, temperature=T,
                          label_ce_weight=w, retain_graph=True, g_C=g, logit_grad=u)
    assert _rel(got, expected) < 1e-10
    with torch.no_grad():
        targets = parent(x)
    tangent = [torch.randn_like(a) for a in alphas]
    kw = dict(lam=0.3, distance=FRO, temperature=T, label_ce_weight=w, labels=y)
    reverse = child_arch_gradient(child, x, targets, tangent, curvature=GGN(T, w, jvp="reverse"), **kw)
    forward = child_arch_gradient(child, x, targets, tangent, curvature=GGN(T, w, jvp="forward"), **kw)
    assert _rel(reverse.g_C, forward.g_C) < 1e-12
    assert _rel(reverse.curvature_term, forward.curvature_term) < 1e-10
    assert _rel(reverse.grad, forward.grad) < 1e-10 and reverse.rho > 0


def test_fresh_ggn_product_equals_explicit_jacobian_product(nets, batch):
    """One forward carrying both dual tangents and the reverse graph gives the explicit-Jacobian
    Jᵀ H_z J v of its own input, and leaves the BN running statistics alone."""
    _, child = nets
    x, _ = batch
    x = x[:3]
    torch.manual_seed(7)
    v = [torch.randn_like(a) for a in child.arch_parameters()]
    for T, w in [(1.0, 0.0), (2.0, 0.5)]:
        [expected] = _explicit_ggn_products(child, x, v, [(T, w)])
        buffers = [b.clone() for b in child.buffers()]
        got = fresh_ggn_product(child, x, child.arch_parameters(), v, temperature=T,
                                label_ce_weight=w)
        assert _rel(got, expected) < 1e-10
        assert all(g.grad_fn is None for g in got)
        assert all(torch.equal(a, b) for a, b in zip(buffers, child.buffers()))


def test_subbatch_size():
    assert [subbatch_size(32, f) for f in (1.0, 0.5, 0.25, 0.125, 0.01)] == [32, 16, 8, 4, 2]
    assert subbatch_size(64, 0.25) == 16 and subbatch_size(10, 0.25) == 3  # ⌈2.5⌉
    assert subbatch_size(1, 0.5) == 1  # never more than the batch


def test_ggn_curvature_subbatch_is_the_product_on_the_first_images(nets, batch):
    """curvature_fraction f: g_C from the whole α̂-batch, the GGN product on its first ⌈f·B⌉
    images (the explicit-Jacobian product there), and the step −g_C + λ·that product."""
    parent, child = nets
    x, y = batch  # B = 8
    alphas = child.arch_parameters()
    with torch.no_grad():
        targets = parent(x)
    torch.manual_seed(8)
    tangent = [torch.randn_like(a) for a in alphas]
    lam = 0.3
    full = child_arch_gradient(child, x, targets, tangent, lam=lam, distance=FRO, curvature=GGN())
    sub = child_arch_gradient(child, x, targets, tangent, lam=lam, distance=FRO,
                              curvature=GGN(fraction=0.25))
    assert _rel(sub.g_C, full.g_C) < 1e-12  # the gradient still sees all 8 images
    v = discrepancy_direction(full.g_C, tangent, "fro")
    [expected] = _explicit_ggn_products(child, x[:2], v, [(1.0, 0.0)])
    assert _rel(sub.curvature_term, expected) < 1e-10
    assert _rel(sub.grad, [-_flat(full.g_C) + lam * expected[0]]) < 1e-10
    assert _rel(sub.curvature_term, full.curvature_term) > 1e-3  # a different (estimated) product
    with pytest.raises(ValueError, match="jvp='forward'"):
        GGN(fraction=0.5, jvp="reverse")
    with pytest.raises(ValueError, match="fraction"):
        GGN(fraction=0.0)


def test_ggn_equals_explicit_jacobian_product_on_smooth_model():
    torch.manual_seed(5)
    net = TinyMixture().to(DT)
    x = torch.randn(6, 5, dtype=DT)
    v = [torch.randn_like(a) for a in net.arch_parameters()]
    [expected] = _explicit_ggn_products(net, x, v, [(0.7, 0.0)])
    got = ggn_product(net, x, net.arch_parameters(), v, temperature=0.7)
    assert _rel(got, expected) < 1e-10


@pytest.mark.parametrize("model", ["child", "smooth"])
def test_ggn_equals_exact_where_child_matches_parent(nets, batch, model):
    """Where p̂ = p the residual (p − p̂)·∂²z of H_G vanishes, so GGN = H_G exactly."""
    if model == "child":
        net, x = nets[1], batch[0]
    else:
        torch.manual_seed(6)
        net, x = TinyMixture().to(DT), torch.randn(6, 5, dtype=DT)
    alphas = net.arch_parameters()
    with torch.no_grad():
        fitted_parent_logits = net(x)
    logits, g_C = _g_C(net, x, fitted_parent_logits, create_graph=True)
    torch.manual_seed(7)
    v = [torch.randn_like(a) for a in alphas]
    exact = exact_hvp(g_C, alphas, v, retain_graph=True)  # ggn's VJP reuses the forward graph
    ggn = ggn_product(net, x, alphas, v, child_logits=logits)
    assert _flat(exact).norm() > 1e-8
    assert _rel(ggn, exact) < 1e-8


def test_ggn_points_like_exact_near_fit(nets, batch):
    """Near p̂ = p the residual term is small: GGN and the exact product nearly coincide."""
    _, child = nets
    x, _ = batch
    alphas = child.arch_parameters()
    with torch.no_grad():
        parent_logits = child(x) + 0.05 * torch.randn(x.shape[0], 5, dtype=DT,
                                                     generator=torch.Generator().manual_seed(8))
    logits, g_C = _g_C(child, x, parent_logits, create_graph=True)
    v = [torch.randn(a.shape, dtype=DT, generator=torch.Generator().manual_seed(9))
         for a in alphas]
    exact = exact_hvp(g_C, alphas, v, retain_graph=True)
    ggn = ggn_product(child, x, alphas, v, child_logits=logits)
    assert _cos(ggn, exact) > 0.95


# -- Fisher ----------------------------------------------------------------------------------------
def test_fisher_rank_one_is_its_formula(nets, batch):
    parent, child = nets
    x, y = batch
    parent_logits, tangent = parent_forward(parent, x, y)
    got = child_arch_gradient(child, x, parent_logits, tangent, lam=0.3, distance=FRO,
                              curvature=Fisher(sign=-1.0))
    _, g_C = _g_C(child, x, parent_logits)
    g, gp = _flat(g_C), _flat(tangent)
    v = 2 * (g - gp)
    expected = -g + 0.3 * (-1.0) * (g @ v) * g
    assert _rel(got.grad, [expected]) < 1e-10
    # The sign is an option: s = +1 flips the curvature term only.
    plus = child_arch_gradient(child, x, parent_logits, tangent, lam=0.3, distance=FRO,
                               curvature=Fisher(sign=1.0))
    assert _rel(plus.curvature_term, [-c for c in got.curvature_term]) < 1e-12


@pytest.mark.parametrize("K", [3])
def test_fisher_microbatches_are_their_formula(nets, batch, K):
    """K = 3 micro-batches of B = 8 (uneven: 3, 3, 2): s/K Σ_k ⟨g_k, v⟩ g_k, where each g_k is the
    gradient of the mean G̃ over micro-batch k through the full-batch forward."""
    parent, child = nets
    x, y = batch
    parent_logits, tangent = parent_forward(parent, x, y)
    got = child_arch_gradient(child, x, parent_logits, tangent, lam=1.0,
                              distance=make_distance("l1"), curvature=Fisher(K))
    _, g_C = _g_C(child, x, parent_logits)
    v = _flat(discrepancy_direction(g_C, tangent, "l1"))
    per_sample = child_objective_per_sample(child(x), parent_logits)
    grads = [_flat(torch.autograd.grad(per_sample[idx].mean(), child.arch_parameters(),
                                       retain_graph=True))
             for idx in torch.arange(8).tensor_split(K)]  # one plain backward per micro-batch
    expected = -sum((g @ v) * g for g in grads) / K
    assert _rel(got.curvature_term, [expected]) < 1e-10
    # The micro-batch gradients recombine into g_C (weights n_k / B).
    sizes = [len(i) for i in torch.arange(8).tensor_split(K)]
    assert _rel([sum(n * g for n, g in zip(sizes, grads)) / 8], g_C) < 1e-10


def test_fisher_rank_one_points_like_exact_near_fit(nets, batch):
    """Near a fitted Child (p̂ ≈ p) H_G ≈ GGN ≼ 0, so for v = g_C the quadratic form gᵀH_G g < 0.
    The rank-1 product with s = −1 is −‖g‖²g, whose inner product with H_G g is −‖g‖²·gᵀH_G g > 0:
    a positive cosine with the exact product."""
    _, child = nets
    x, _ = batch
    alphas = child.arch_parameters()
    with torch.no_grad():
        parent_logits = child(x) + 0.05 * torch.randn(x.shape[0], 5, dtype=DT,
                                                     generator=torch.Generator().manual_seed(10))
    _, g_C = _g_C(child, x, parent_logits, create_graph=True)
    v = [g.detach() for g in g_C]
    exact = exact_hvp(g_C, alphas, v)
    fisher = Fisher(1, -1.0).product(ChildGraph(child, x, alphas, None, None, v), v)
    assert (_flat(v) @ _flat(exact)).item() < 0  # the premise
    assert _cos(fisher, exact) > 0


def test_microbatch_gradients_rejects_too_many_parts(nets, batch):
    _, child = nets
    x, _ = batch
    per_sample = child(x).logsumexp(1)
    with pytest.raises(ValueError, match="micro-batches"):
        microbatch_gradients(per_sample, child.arch_parameters(), 9)


# -- dispatcher and helpers -------------------------------------------------------------------------
def test_curvature_strategies_from_names_and_config():
    with pytest.raises(ValueError, match="curvature mode"):
        make_curvature("hessian")
    with pytest.raises(ValueError, match="sign"):
        make_curvature("fisher", fisher_sign=0.5)
    assert isinstance(make_curvature("exact"), Exact) and Exact.create_graph
    g = make_curvature("ggn", temperature=2.0)
    assert isinstance(g, GGN) and g.temperature == 2.0 and g.retain_graph
    f = make_curvature("fisher", fisher_microbatches=4)
    assert f.microbatches == 4 and f.retain_graph
    assert make_curvature(g) is g
    from dcpnas.search.config import ObjectiveConfig
    default = curvature_from_config(ObjectiveConfig())  # the default (Decision C): ggn on 1/4
    assert isinstance(default, GGN) and default.fraction == 0.25 and default.jvp == "forward"
    assert not default.retain_graph  # g_C's graph is not kept for the sub-batch product
    for whole in ({"curvature_fraction": 1.0}, {"ggn_jvp": "reverse"}):
        g = curvature_from_config(ObjectiveConfig(**whole))
        assert g.fraction == 1.0 and g.retain_graph
    assert ObjectiveConfig(curvature="exact").fraction == 1.0
    sub = curvature_from_config(ObjectiveConfig(curvature_fraction=0.125))
    assert sub.fraction == 0.125
    from dcpnas.config import from_dict
    from dcpnas.errors import ConfigError
    from dcpnas.search.config import SearchConfig
    for bad, msg in [({"curvature_fraction": 0.0}, r"^objective: curvature_fraction must be in \(0, 1\]"),
                     ({"curvature_fraction": 0.5, "curvature": "exact"}, "a ggn option"),
                     ({"curvature_fraction": 0.5, "ggn_jvp": "reverse"}, "set ggn_jvp=forward")]:
        with pytest.raises(ConfigError, match=msg):
            from_dict(SearchConfig, {"objective": bad})


def test_frozen_bn_statistics_restores_flags_and_keeps_buffers():
    torch.manual_seed(11)
    net = nn.Sequential(nn.BatchNorm1d(3), nn.BatchNorm1d(3))
    net[1].eval()
    before = [b.clone() for b in net.buffers()]
    x = torch.randn(5, 3)
    with frozen_bn_statistics(net):
        out = net(x)
    assert net[0].track_running_stats and net[1].track_running_stats
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
    assert torch.allclose(out, net(x))  # same output as a normal training-mode forward
    assert not torch.equal(before[0], net[0].running_mean)  # ...which does update statistics


def test_prelu_derivative_conventions():
    """The Child's PReLU at x = 0: native backward uses the slope a, but native forward-mode AD
    and double backward use 1. Under forward AD and ``consistent_derivatives`` every mode uses a,
    which the GGN-vs-exact equalities above rely on (tests/test_ops.py checks the CPU backward)."""
    act = PReLU(1).to(DT)
    x = torch.tensor([0.0, -2.0, 3.0], dtype=DT).view(1, 1, 3)
    a = act.weight.item()
    expected = torch.tensor([a, a, 1.0], dtype=DT)

    def slopes(consistent):
        with consistent_derivatives(act) if consistent else contextlib.nullcontext():
            xr = x.clone().requires_grad_(True)
            u = torch.ones_like(x, requires_grad=True)
            first, = torch.autograd.grad(act(xr), xr, u, create_graph=True)
            second, = torch.autograd.grad(first, u, torch.ones_like(first))
        with torch.no_grad(), fwAD.dual_level():
            tangent = fwAD.unpack_dual(act(fwAD.make_dual(x, torch.ones_like(x)))).tangent
        return first.detach().flatten(), second.flatten(), tangent.flatten()

    first, second, tangent = slopes(consistent=True)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert torch.equal(tangent, expected)
    native_first, _, _ = slopes(consistent=False)
    assert torch.equal(native_first, expected)
    assert act.consistent_derivatives is False


def test_forward_mode_products_start_without_torch_warning():
    """The first dual tensor of a process makes torch load its jvp decompositions through the
    deprecated ``torch.jit.script`` (a FutureWarning in every search log); the curvature path loads
    them quietly. A fresh process, warnings as errors: fails if the warning reaches the user."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import torch, torch.nn as nn
        from dcpnas.search.maths.curvature import jacobian_vector_product
        class Net(nn.Module):
            def forward(self, x, alphas):
                return x * alphas[0]
        logits, jv = jacobian_vector_product(Net(), torch.ones(2, 3), [torch.ones(3)], [torch.full((3,), 2.0)])
        assert torch.equal(jv, torch.full((2, 3), 2.0)), jv
    """)
    proc = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
