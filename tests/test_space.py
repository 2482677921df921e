"""The search space: supernet shapes, α gradients (finite differences, double backward), parameter
groups, derived networks and DistributedDataParallel."""

from __future__ import annotations

import copy
import contextlib
import os
import socket

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dcpnas.binary.layers as binary_layers
from dcpnas.binary import BinaryConv2d
from dcpnas.space import NAMED_GENOTYPES, NUM_EDGES, PRIMITIVES, Supernet, edge_index
from dcpnas.space import ops as space_ops
from dcpnas.space.mixed import MixedOp
from dcpnas.space.network import DerivedNetwork
from dcpnas.space.primitives import OpStyle

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_supernet(kind="child", layout="cifar", dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(in_channels=3, num_classes=5, C=4, layers=3, layout=layout)
    args.update(kw)
    return Supernet(kind, **args).to(dtype)


# -- shapes and the `none` op -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["parent", "child"])
@pytest.mark.parametrize("layout,size", [("cifar", 8), ("imagenet", 32)])
def test_supernet_output_shape(kind, layout, size):
    net = tiny_supernet(kind, layout)
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5)
    assert [a.shape for a in net.arch_parameters()] == [(NUM_EDGES, len(PRIMITIVES))] * 2
    has_binary = any(isinstance(m, BinaryConv2d) for m in net.modules())
    assert has_binary == (kind == "child")


def test_none_op_is_never_called(monkeypatch):
    calls = []
    monkeypatch.setattr(space_ops.Zero, "forward", lambda self, x: calls.append(1) or x * 0)
    net = tiny_supernet("child")
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    assert calls == []
    # ... yet `none` takes part in the softmax normalisation: its α still gets a gradient.
    assert net.alpha_normal.grad[:, PRIMITIVES.index("none")].abs().sum() > 0


def test_mixed_op_is_the_softmax_weighted_sum_without_none():
    torch.manual_seed(0)
    mixed = MixedOp(4, 1, OpStyle(binary=True)).double().eval()
    x = torch.randn(2, 4, 6, 6, dtype=D)
    w = F.softmax(torch.randn(len(PRIMITIVES), dtype=D), 0)
    expected = sum(w[i] * mixed.op_for(name)(x) for i, name in enumerate(PRIMITIVES)
                   if name != "none")
    assert torch.allclose(mixed(x, w), expected)
    with pytest.raises(ValueError):
        mixed.op_for("none")


# -- α derivatives ----------------------------------------------------------------------------------
def _surrogate(x):
    """Bi-Real ApproxSign surrogate, 2x − x|x| on |x| < 1, ±1 outside (written here independently)."""
    return torch.where(x.abs() < 1, 2 * x - x * x.abs(), torch.where(x >= 0, 1.0, -1.0).to(x.dtype))


@contextlib.contextmanager
def frozen_activation_signs(monkeypatch):
    """Replace sign(x) in binary activations by its linearisation s(x) + c, c frozen at α₀.

    The forward of a 1-bit net is piecewise constant in α (sign), so plain finite differences see
    zero where the straight-through estimator reports a gradient. The STE gradient is, exactly, the
    gradient of f̃(α) = the net with each sign(x) replaced by s(x) + c, c = sign(x₀) − s(x₀) taken
    in a forward at α₀ (f̃ = f at α₀). Finite differences of f̃ are the oracle for autograd.
    The first forward under this context records c (and returns exactly sign(x)); later ones
    replay the recorded c in call order.
    """
    consts, state = [], {"i": 0, "recording": True}

    def linearised(x):
        if state["recording"]:
            consts.append((torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - _surrogate(x)).detach())
            return _surrogate(x) + consts[-1]
        c = consts[state["i"]]
        state["i"] += 1
        return _surrogate(x) + c

    def rewind():
        state["recording"] = False
        state["i"] = 0

    monkeypatch.setattr(binary_layers, "approx_sign", linearised)
    yield rewind


def _loss(net, x, y, alphas=None):
    return F.cross_entropy(net(x, alphas), y)


def _fd_setup(seed=0):
    """A float64 Child in eval mode, with random BN running statistics, a batch and labels.

    Why eval mode with random statistics: a W1A1 conv outputs β·(integer), and train-mode BN of
    such a channel gives exact zeros wherever a value equals the batch mean; PReLU (and the
    surrogate's x|x|) have a kink at 0, where no derivative exists and autograd and central
    differences legitimately disagree. A fixed random affine BN never maps those integers to 0.
    """
    net = tiny_supernet("child", dtype=D, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for a in net.arch_parameters():  # spread α so softmax weights differ noticeably
            a.copy_(0.5 * torch.randn(a.shape, generator=g, dtype=D))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g, dtype=D))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.num_features, generator=g, dtype=D))
    net.eval()
    x = torch.randn(4, 3, 8, 8, dtype=D, generator=g)
    y = torch.randint(0, 5, (4,), generator=g)
    return net, x, y


# Entries (tensor, edge, op): both cell types, a parametric op, a pool, skip and `none`.
PICKS = [(0, 0, PRIMITIVES.index("sep_conv_3x3")), (0, 5, PRIMITIVES.index("none")),
         (0, 13, PRIMITIVES.index("dil_conv_5x5")), (1, 2, PRIMITIVES.index("max_pool_3x3")),
         (1, 7, PRIMITIVES.index("skip_connect")), (1, 11, PRIMITIVES.index("sep_conv_5x5"))]


def test_alpha_gradient_matches_finite_differences(monkeypatch):
    net, x, y = _fd_setup()
    grads = torch.autograd.grad(_loss(net, x, y), net.arch_parameters())  # the library's STE
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    eps = 1e-6
    with frozen_activation_signs(monkeypatch) as rewind, torch.no_grad():
        f0 = _loss(net, x, y, alphas)
        assert f0.item() == pytest.approx(_loss_unpatched(net, x, y, alphas).item(), rel=1e-12)
        for which, e, m in PICKS:
            vals = []
            for sign in (1, -1):
                a = [t.clone() for t in alphas]
                a[which][e, m] += sign * eps
                rewind()
                vals.append(_loss(net, x, y, a).item())
            fd = (vals[0] - vals[1]) / (2 * eps)
            ad = grads[which][e, m].item()
            assert abs(ad) > 1e-6, (which, e, m)  # a non-trivial entry
            assert abs(fd - ad) <= 1e-4 * abs(ad), (which, e, m, fd, ad)


def _loss_unpatched(net, x, y, alphas):
    # The recorded forward returns exactly sign(x): compare with the library's own forward.
    from dcpnas.binary import quantizers

    saved = binary_layers.approx_sign
    binary_layers.approx_sign = quantizers.approx_sign
    try:
        return _loss(net, x, y, alphas)
    finally:
        binary_layers.approx_sign = saved


def test_hessian_vector_product_matches_finite_differences(monkeypatch):
    net, x, y = _fd_setup(seed=3)
    alphas = net.arch_parameters()
    g = torch.Generator().manual_seed(7)
    v = [torch.randn(a.shape, dtype=D, generator=g) for a in alphas]
    grads = torch.autograd.grad(_loss(net, x, y), alphas, create_graph=True)
    hvp = torch.autograd.grad(grads, alphas, grad_outputs=v)  # Pearlmutter, by double backward

    base = [a.detach().clone() for a in alphas]
    eps = 1e-5
    with frozen_activation_signs(monkeypatch) as rewind:
        with torch.no_grad():
            _loss(net, x, y, base)  # record the sign constants at α₀
        sides = []
        for sign in (1, -1):
            a = [(b + sign * eps * d).requires_grad_() for b, d in zip(base, v)]
            rewind()
            sides.append(torch.autograd.grad(_loss(net, x, y, a), a))
    fd = [(p - m) / (2 * eps) for p, m in zip(*sides)]
    flat_fd, flat_h = torch.cat([t.flatten() for t in fd]), torch.cat([t.flatten() for t in hvp])
    assert flat_h.norm() > 1e-6
    assert (flat_fd - flat_h).norm() <= 1e-5 * flat_h.norm()


# -- parameter groups, inheritance, norms -----------------------------------------------------------
def test_arch_and_weight_parameters_are_disjoint_and_cover():
    net = tiny_supernet("child")
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch == {id(net.alpha_normal), id(net.alpha_reduce)}
    assert not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    assert len(weights) == len(net.weight_parameters())  # no duplicates
    assert any(p is c.beta for c in net.modules() if isinstance(c, BinaryConv2d)
               for p in net.weight_parameters())


def test_load_arch_copies_values_not_tensors():
    parent, child = tiny_supernet("parent", seed=1), tiny_supernet("child", dtype=D, seed=2)
    child.load_arch(parent.arch_parameters())
    for dst, src in zip(child.arch_parameters(), parent.arch_parameters()):
        assert dst.dtype == D and torch.equal(dst, src.to(D))
        assert dst.data_ptr() != src.data_ptr()
    with torch.no_grad():
        parent.alpha_normal.add_(1.0)
    assert not torch.equal(child.alpha_normal, parent.alpha_normal.to(D))
    assert isinstance(child.alpha_normal, nn.Parameter)


@pytest.mark.parametrize("kind", ["parent", "child"])
def test_op_weight_sq_norms_equals_direct_computation(kind):
    net = tiny_supernet(kind)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, BinaryConv2d):
                m.beta.uniform_(0.5, 1.5)
    R_normal, R_reduce = net.op_weight_sq_norms()
    e, op = edge_index(2, 1), "dil_conv_3x3"  # node 2's edge from input 1
    expected = 0.0
    for cell in net.cells:
        if cell.reduction:
            continue
        for m in cell.edges[e].op_for(op).modules():
            if isinstance(m, BinaryConv2d):
                # ‖β∘sign(ŵ)‖² = Σ_o β_o² · fan-in, since sign² = 1.
                fan_in = m.weight[0].numel()
                expected += sum(b * b * fan_in for b in m.beta.tolist())
            elif isinstance(m, nn.Conv2d):
                expected += sum(v * v for v in m.weight.flatten().tolist())
    assert R_normal[e, PRIMITIVES.index(op)].item() == pytest.approx(expected, rel=1e-5)
    free = [PRIMITIVES.index(n) for n in ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "none")]
    assert R_normal[:, free].abs().sum() == 0  # skip is Identity in normal cells
    assert R_reduce[:, PRIMITIVES.index("none")].abs().sum() == 0
    assert (R_reduce[:, PRIMITIVES.index("sep_conv_5x5")] > 0).all()


# -- derived networks --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NAMED_GENOTYPES))
@pytest.mark.parametrize("layout,size", [("cifar", 8), ("imagenet", 32)])
@pytest.mark.parametrize("binary", [True, False])
def test_derived_network_builds_and_runs(name, layout, size, binary):
    torch.manual_seed(0)
    net = DerivedNetwork(name, binary=binary, num_classes=7, C=4, layers=3, layout=layout)
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert any(isinstance(m, BinaryConv2d) for m in net.modules()) == binary
    assert not any(isinstance(m, space_ops.Zero) for m in net.modules())


def test_set_binary_weights_switches_effective_weights():
    torch.manual_seed(0)
    net = DerivedNetwork("DDPNAS_MCN_2", binary=True, C=4, layers=3).eval()
    x = torch.randn(2, 3, 8, 8)
    convs = [m for m in net.modules() if isinstance(m, BinaryConv2d)]
    out_binary = net(x)
    net.set_binary_weights(False)
    assert all(torch.equal(c.effective_weight(), c.weight) for c in convs)
    assert not torch.allclose(net(x), out_binary)
    net.set_binary_weights(True)
    for c in convs:
        assert torch.equal(c.effective_weight(), c.beta.view(-1, 1, 1, 1) * torch.sign(c.weight))
    assert torch.equal(net(x), out_binary)


# -- DistributedDataParallel -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        net = tiny_supernet("child", seed=rank)  # different inits: DDP must broadcast rank 0's
        g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        x, y = torch.randn(3, 3, 8, 8, generator=g), torch.randint(0, 5, (3,), generator=g)
        ddp = nn.parallel.DistributedDataParallel(net)
        local = torch.autograd.grad(F.cross_entropy(net(x), y), net.arch_parameters())
        F.cross_entropy(ddp(x), y).backward()
        torch.save({"local": local, "ddp": [a.grad for a in net.arch_parameters()],
                    "alpha": [a.detach() for a in net.arch_parameters()]},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_averages_alpha_gradients(tmp_path):
    # fork: the workers inherit the imported torch instead of importing it again (seconds each).
    torch.multiprocessing.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)),
                                          nprocs=2, join=True, start_method="fork")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for k in range(2):
        assert torch.equal(r0["alpha"][k], r1["alpha"][k])  # broadcast from rank 0
        assert not torch.allclose(r0["local"][k], r1["local"][k])  # the data differ
        assert torch.allclose(r0["ddp"][k], r1["ddp"][k])
        mean = (r0["local"][k] + r1["local"][k]) / 2
        assert torch.allclose(r0["ddp"][k], mean, atol=1e-7, rtol=1e-5)


# -- shared input stage (MixedOp) -----------------------------------------------------------------
def _twin_mixed(stride, partial=1, scope="official", binary=True):
    torch.manual_seed(0)
    style = OpStyle(binary=binary, scope=scope, affine=False)
    shared = MixedOp(8, stride, style, partial).double()
    plain = copy.deepcopy(shared)
    plain.share_input_stage = False
    return shared, plain


@pytest.mark.parametrize("stride,partial,scope,binary", [
    (1, 1, "official", True), (2, 1, "official", True), (1, 2, "official", True),
    (2, 1, "book", True), (1, 1, "official", False), (2, 1, "official", False)])
@pytest.mark.parametrize("training", [True, False])
def test_shared_input_stage_equals_one_stage_per_op(stride, partial, scope, binary, training):
    """One input stage (the 1-bit ops' BN, the real ops' ReLU) for every op that opens with it:
    outputs, gradients (x, mixing weights, every parameter) and running statistics equal the
    op-by-op forward on a fixed batch."""
    shared, plain = _twin_mixed(stride, partial, scope, binary)
    assert sum(shared._takes_h) == (5 if stride == 2 else 4)   # sep ×2, dil ×2 (+ factorised reduce)
    shared.train(training), plain.train(training)
    x = torch.randn(4, 8, 8, 8, dtype=D)
    w = F.softmax(torch.randn(len(PRIMITIVES), dtype=D), 0)
    outs, grads = [], []
    for net in (shared, plain):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        for _ in range(2):                                  # the second pass reads updated statistics
            y = net(xi, wi)
        g = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
        grads.append(torch.autograd.grad(y, [xi, wi, *net.parameters()], g))
        outs.append(y.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for (k, a), b in zip(shared.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=k)


@pytest.mark.parametrize("binary", [True, False])
def test_shared_input_stage_under_forward_ad_and_double_backward(binary):
    """The GGN's forward-mode J·v and the exact path's double backward see the same function."""
    import torch.autograd.forward_ad as fwAD
    shared, plain = _twin_mixed(1, binary=binary)
    x = torch.randn(4, 8, 8, 8, dtype=D)
    w = F.softmax(torch.randn(len(PRIMITIVES), dtype=D), 0)
    v = torch.randn_like(w)
    jvps, hvps = [], []
    for net in (shared, plain):
        with fwAD.dual_level():
            jvps.append(fwAD.unpack_dual(net(x, fwAD.make_dual(w, v))).tangent)
        wi = w.clone().requires_grad_()
        (g,) = torch.autograd.grad((net(x, wi) ** 2).sum(), wi, create_graph=True)
        hvps.append(torch.autograd.grad(g @ v, wi)[0])
    torch.testing.assert_close(jvps[0], jvps[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hvps[0], hvps[1], rtol=1e-8, atol=1e-10)


def test_shared_input_stage_is_skipped_for_bn_in_eval_mode_only():
    shared, _ = _twin_mixed(1)
    x = torch.randn(2, 8, 4, 4, dtype=D)
    assert shared._shared_input_stage(x) is not None
    shared.eval()
    assert shared._shared_input_stage(x) is None           # each op reads its own running stats
    real, _ = _twin_mixed(1, binary=False)
    assert torch.equal(real.eval()._shared_input_stage(x), x.relu())


def test_one_bit_mixed_op_compiles_without_graph_breaks():
    """``torch.compile(fullgraph=True)`` traces a 1-bit edge (binarisers, PReLU, BN, dilated
    depthwise convs, factorised reduce) and gives the eager values and gradients. aot_eager: the
    tracing without inductor's C++ code generation, which takes minutes per graph on CPU."""
    shared, _ = _twin_mixed(2)
    compiled = copy.deepcopy(shared)
    fn = torch.compile(compiled, backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 8, 8, 8, dtype=D).contiguous(memory_format=torch.channels_last)
    w = F.softmax(torch.randn(len(PRIMITIVES), dtype=D), 0)
    results = []
    for call, net in ((shared, shared), (fn, compiled)):
        wi = w.clone().requires_grad_()
        y = call(x, wi)
        results.append((y.detach(), *torch.autograd.grad(y.square().sum(), [wi, *net.parameters()])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kind", ["parent", "child"])
def test_op_weight_sq_norms_every_entry(kind):
    """Every (cell type, edge, op) entry against ‖w‖² summed op by op (β∘sign(ŵ) formed explicitly)."""
    net = tiny_supernet(kind, dtype=D)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, BinaryConv2d):
                m.beta.uniform_(0.5, 1.5)
    expected = torch.zeros(2, NUM_EDGES, len(PRIMITIVES), dtype=D)
    for cell in net.cells:
        for e, mixed in enumerate(cell.edges):
            for i, op in zip(mixed.candidate_indices, mixed.ops):
                for m in op.modules():
                    if isinstance(m, BinaryConv2d):
                        w = m.beta.view(-1, 1, 1, 1) * torch.where(m.weight >= 0, 1.0, -1.0).to(D)
                    elif isinstance(m, nn.Conv2d):
                        w = m.weight
                    else:
                        continue
                    expected[int(cell.reduction), e, i] += w.detach().pow(2).sum()
    torch.testing.assert_close(torch.stack(net.op_weight_sq_norms()), expected, rtol=1e-12, atol=0)
    assert expected.abs().sum() > 0
