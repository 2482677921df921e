"""The search loop: Algorithm 10's alternation and inheritance, resume, NaN handling, the baselines'
bookkeeping (paths, sampling, pruning), checkpoints and reports.

End-to-end runs use a tiny config (C=2, 3 cells, 16+16 images, batch 8) so each takes seconds.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from dcpnas.errors import ConfigError, NonFiniteLossError
from dcpnas.search import SearchConfig, resolve_search_config, search
from dcpnas.search.run import steps as phases
from dcpnas.search.run.checkpoint import checkpoint_path, load_search_checkpoint, pack_tensors, unpack_tensors
from dcpnas.search.methods import METHODS
from dcpnas.search.run.inputs import SearchData
from dcpnas.search.run.learner import build_supernet, init_child_from_parent
from dcpnas.search.methods import MethodContext
from dcpnas.search.methods.cpnas_sample import CpNasSample
from dcpnas.search.methods.paths import genotype_paths, genotype_to_alphas, random_genotype
from dcpnas.search.run.reporting import COLORS, alpha_entropy, plot_alphas
from dcpnas.space import NUM_EDGES, PRIMITIVES, Supernet, derive_genotype

TINY = ["data.limit=32", "data.batch_size=8", "supernet.C=2", "schedule.rounds=1", "data.eval_batches=1",
        "sample.steps=1", "sample.eval_batches=1", "random.samples=2", "random.eval_batches=1",
        "deterministic=true", "tensorboard=false"]


def tiny(*extra):
    return TINY + list(extra)


@pytest.fixture(scope="module")
def small(tiny_npz):
    """``tiny`` on real Fashion-MNIST images average-pooled to 8×8 (an ``npz:`` dataset): faster."""
    return lambda *extra: tiny(f"data.dataset=npz:{tiny_npz}", *extra)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- config -------------------------------------------------------------------------------------------
def test_presets_and_effective_coefficients():
    quick = resolve_search_config(preset="quick")
    assert quick.data.dataset == "embedded" and quick.device == "cpu"
    assert quick.lam == 0.03 and quick.mu == 0.2  # λ on the tangent-scaled D (Decision L)
    assert quick.objective.curvature == "ggn" and quick.objective.teacher_bn == "batch"
    assert resolve_search_config(preset="quick", method="cpnas").lam == 0.0
    ablated = resolve_search_config(preset="quick", overrides=["ablation.use_discrepancy=false",
                                                               "ablation.use_reconstruction=false"])
    assert ablated.lam == 0.0 and ablated.mu == 0.0
    c10 = resolve_search_config(preset="cifar10")
    assert (c10.supernet.C, c10.supernet.layers, c10.schedule.rounds, c10.data.batch_size) == (16, 8, 50, 64)
    assert resolve_search_config(preset="imagenet").layout == "imagenet"
    assert resolve_search_config(preset="fashion-mnist").data.dataset == "fashion-mnist"


@pytest.mark.parametrize("override, culprit", [
    ("objective.lamb=1", "objective.lamb"),
    ("method=nas", "method"),
    ("schedule.alternation=batch", "alternation"),
    ("objective.curvature=hessian", "curvature"),
    ("supernet.C=3", "C"),
])
def test_bad_settings_name_the_culprit(override, culprit):
    with pytest.raises(ConfigError) as e:
        resolve_search_config(preset="quick", overrides=[override])
    assert culprit in str(e.value) and "\n" not in str(e.value)


# -- the space extensions the baselines use ------------------------------------------------------------
def test_single_path_forward_equals_one_hot_mixture_and_runs_only_the_path():
    torch.manual_seed(0)
    net = Supernet("child", in_channels=1, num_classes=10, C=2, layers=3).eval()
    g = torch.Generator().manual_seed(3)
    paths = [torch.randint(len(PRIMITIVES), (NUM_EDGES,), generator=g).tolist() for _ in range(2)]
    x = torch.randn(2, 1, 8, 8)
    # A one-hot α (softmax saturated to exactly 1 and 0) mixes exactly the path's ops.
    one_hot = [torch.nn.functional.one_hot(torch.tensor(p), len(PRIMITIVES)).float() * 1e4 for p in paths]
    mixed = net(x, alphas=one_hot)
    single = net(x, paths=paths)
    torch.testing.assert_close(single, mixed, rtol=1e-5, atol=1e-5)
    # Only the chosen ops get gradients.
    net.train()
    net(x, paths=paths).sum().backward()
    for cell in net.cells:
        path = paths[1 if cell.reduction else 0]
        for e, edge in enumerate(cell.edges):
            for idx, op in zip(edge._indices, edge.ops):
                grads = [p.grad for p in op.parameters()]
                if not grads:
                    continue
                used = any(gr is not None for gr in grads)
                assert used == (idx == path[e]), (e, PRIMITIVES[idx])


def test_genotype_alphas_and_paths_roundtrip():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        genotype = random_genotype(g)
        assert derive_genotype(*genotype_to_alphas(genotype)) == genotype
        normal, reduce = genotype_paths(genotype)
        used = [i for i in normal if PRIMITIVES[i] != "none"]
        assert sorted(PRIMITIVES[i] for i in used) == sorted(op for op, _ in genotype.normal)
        assert sum(PRIMITIVES[i] != "none" for i in reduce) == 8


def test_init_child_from_parent_copies_every_conv():
    torch.manual_seed(0)
    cfg = resolve_search_config(preset="quick", overrides=["supernet.C=2"])
    parent = build_supernet("parent", cfg, 1, 10, torch.device("cpu"))
    child = build_supernet("child", cfg, 1, 10, torch.device("cpu"))
    n = init_child_from_parent(child, parent)
    pw = [m.weight for m in parent.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    cw = [m for m in child.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert n == len(pw) == len(cw) > 100
    for w, m in zip(pw, cw):
        assert torch.equal(w, m.weight)
        if hasattr(m, "beta") and m.beta is not None:
            torch.testing.assert_close(m.beta, m.weight.abs().mean(dim=(1, 2, 3)))


class _Batches:
    def __len__(self):
        return 1


def test_cpnas_sampling_is_without_replacement_and_pruning_drops_the_worst():
    cfg = resolve_search_config(preset="quick", method="cpnas-sample", overrides=["supernet.C=2"])
    data = SearchData(_Batches(), _Batches(), 1, 10, 28, 16, 16)
    m = CpNasSample(MethodContext(cfg, data, torch.device("cpu")))
    assert m.num_epochs() == sum(range(2, 9))          # T=1: 8+7+...+2 samplings
    # One sweep samples every op of every edge exactly once.
    sweep = torch.stack([m.sample_paths(0, 0, k) for k in range(8)])        # 8 × 2 × 14
    assert torch.equal(sweep.sort(dim=0).values, torch.arange(8).view(8, 1, 1).expand(8, 2, NUM_EDGES))
    # Pruning drops, per edge, the op with the lowest mean indicator z (Eq. 4.16).
    z = torch.rand(2, NUM_EDGES, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m.z_stage.copy_(z * 3)
    m.n_stage.fill_(3)
    m.prune(0)
    assert torch.equal(~m.alive, torch.nn.functional.one_hot(z.argmin(-1), 8).bool())
    assert (m.alive.sum(-1) == 7).all()
    # The next stage samples only the survivors.
    for k in range(7):
        p = m.sample_paths(1, 0, k)
        assert m.alive.gather(2, p.unsqueeze(-1)).all()
    # The reported α ranks the survivors above every pruned op.
    a = torch.stack(m.alphas())
    dropped = z.argmin(-1)
    assert (a.gather(2, dropped.unsqueeze(-1)).squeeze(-1) < a.max(-1).values).all()


# -- checkpoints and reports -------------------------------------------------------------------------
def test_pack_tensors_roundtrip():
    obj = {"a": [torch.randn(3, 4), torch.tensor(5), (torch.ones(2, dtype=torch.bool), "x")],
           "opt": {"state": {0: {"momentum_buffer": torch.randn(2, 1, 3, 3)}}, "param_groups": [{"lr": 0.1}]},
           "empty": torch.zeros(0, 3), "none": None}
    back = unpack_tensors(pack_tensors(obj))
    assert back["a"][2][1] == "x" and back["none"] is None and back["opt"]["param_groups"] == [{"lr": 0.1}]
    for x, y in [(obj["a"][0], back["a"][0]), (obj["a"][1], back["a"][1]), (obj["a"][2][0], back["a"][2][0]),
                 (obj["opt"]["state"][0]["momentum_buffer"], back["opt"]["state"][0]["momentum_buffer"]),
                 (obj["empty"], back["empty"])]:
        assert x.dtype == y.dtype and torch.equal(x, y)


def _png_colours(path):
    """The set of (r, g, b) colours of a PNG, as 0..255 integers."""
    from matplotlib.image import imread

    img = imread(path)
    return img.shape, {tuple(int(round(255 * c)) for c in px[:3]) for px in img.reshape(-1, img.shape[-1])}


def test_alpha_plot_draws_every_op(tmp_path):
    history = [{"epoch": e, "alpha_weights": [[float(e + m) for m in range(8)], [1.0] * 8]} for e in (1, 2, 3)]
    path = plot_alphas(history, tmp_path / "alphas")
    assert path == tmp_path / "alphas.png"
    shape, colours = _png_colours(path)
    assert shape[:2] == (400, 1100)
    hexes = {"#%02x%02x%02x" % c for c in colours}
    assert set(COLORS) <= hexes  # one line (and legend entry) per op
    assert plot_alphas([], tmp_path / "none") is None


def test_alpha_entropy_bounds():
    assert alpha_entropy([torch.zeros(14, 8)] * 2) == pytest.approx(torch.log(torch.tensor(8.0)).item())
    sharp = torch.zeros(14, 8)
    sharp[:, 0] = 50
    assert alpha_entropy([sharp, sharp]) < 1e-10


# -- end-to-end ----------------------------------------------------------------------------------------
def test_dcpnas_epoch_alternation_inherits_architecture(tmp_path):
    res = search(preset="quick", overrides=tiny("schedule.steps_per_epoch=1"), out=tmp_path / "run", quiet=True)
    phases_run = [(h["round"], h["phase"]) for h in res.history]
    assert phases_run == [(1, "parent"), (1, "child")]
    ckpt = load_search_checkpoint(checkpoint_path(tmp_path / "run"))
    st = ckpt["method_state"]
    # α ← α̂ after the Child epoch: both supernets end with the same architecture.
    for name in ("alpha_normal", "alpha_reduce"):
        assert torch.equal(st["parent"]["net"][name], st["child"]["net"][name])
    # α̂ moved during the Child epoch (it is not the Parent's α of the end of the Parent epoch).
    parent_epoch_alphas = torch.tensor(res.history[0]["alphas"])
    assert not torch.equal(parent_epoch_alphas, torch.tensor(res.history[1]["alphas"]))
    # The Child epoch logs the three loss terms, the teacher's and the Child's accuracy on
    # search-val, and the diagnostics of Decisions L, O and R.
    child = res.history[1]
    for key in ("G", "D", "L_R", "G_val", "teacher_acc", "child_acc", "alpha_entropy", "genotype",
                "time_s", "rho", "cos_step_gC", "G_share", "child_backtrack_ratio"):
        assert key in child, key
    assert child["G"] <= 0 and child["D"] >= 0 and child["L_R"] > 0
    assert res.genotype == derive_genotype(*[torch.tensor(a) for a in child["alphas"]])
    # ψ̃ of both phases is saved and stays non-negative.
    for who in ("parent", "child"):
        assert all((p >= 0).all() for p in st[who]["decoupled"]["psi"])


def test_step_alternation_and_epoch_mean_tangent(tmp_path, small):
    res = search(preset="quick", overrides=small("schedule.alternation=step", "objective.tangent=epoch_mean",
                                                "objective.curvature=exact"),
                 out=tmp_path / "run", quiet=True)
    assert [h["phase"] for h in res.history] == ["parent+child"]
    h = res.history[0]
    assert h["steps"] == 2 and "D" in h and "parent_val_CE" in h
    st = load_search_checkpoint(checkpoint_path(tmp_path / "run"))["method_state"]
    assert torch.equal(st["parent"]["net"]["alpha_normal"], st["child"]["net"]["alpha_normal"])
    assert st["tangent"]["count"] == 2  # the round's two Parent α-steps were averaged


def test_curvature_subbatch_search_runs_and_moves_the_step(tmp_path, small):
    """curvature_fraction end to end: the Child's α̂-steps log a non-zero ρ from the sub-batch
    product, and the step differs from the whole-batch search's from the first α̂-step on."""
    over = small("schedule.steps_per_epoch=1")
    full = search(preset="quick", overrides=over + ["objective.curvature_fraction=1"],
                  out=tmp_path / "full", quiet=True)
    sub = search(preset="quick", overrides=over + ["objective.curvature_fraction=0.5"],
                 out=tmp_path / "sub", quiet=True)
    f, s = full.history[1], sub.history[1]
    assert s["rho"] > 0 and f["rho"] > 0 and s["G_val"] == pytest.approx(f["G_val"], rel=1e-6)
    assert s["alphas"] != f["alphas"]
    assert sub.config.objective.curvature_fraction == 0.5


def test_resume_after_stop_equals_uninterrupted(tmp_path, small):
    over = small("schedule.rounds=2", "schedule.steps_per_epoch=1")
    full = search(preset="quick", overrides=over, out=tmp_path / "full", quiet=True)
    part = search(preset="quick", overrides=over + ["stop_after_epochs=1"], out=tmp_path / "part", quiet=True)
    assert not part.completed and len(part.history) == 1
    assert not (tmp_path / "part" / "genotype.json").exists()
    # Resuming reuses the saved config; only runtime keys (here stop_after_epochs) may change.
    with pytest.raises(ConfigError, match="objective.lam"):
        search(overrides=["objective.lam=0.1"], out=tmp_path / "part", resume=True, quiet=True)
    resumed = search(overrides=["stop_after_epochs=0"], out=tmp_path / "part", resume=True, quiet=True)
    assert resumed.completed and len(resumed.history) == 4
    assert resumed.genotype == full.genotype
    for a, b in zip(full.history, resumed.history):
        assert a["alphas"] == b["alphas"] and a.get("G") == b.get("G")
    sa = load_search_checkpoint(checkpoint_path(tmp_path / "full"))["method_state"]
    sb = load_search_checkpoint(checkpoint_path(tmp_path / "part"))["method_state"]
    for who in ("parent", "child"):
        for k, v in sa[who]["net"].items():
            assert torch.equal(v, sb[who]["net"][k]), (who, k)
        for x, y in zip(sa[who]["decoupled"]["psi"], sb[who]["decoupled"]["psi"]):
            assert torch.equal(x, y)
    assert resumed.summary["final"] == full.summary["final"]
    # A run's saved config.json repeats it (--config accepts it).
    assert resolve_search_config(tmp_path / "full" / "config.json") == full.config


def test_nan_stops_with_clear_error_and_keeps_checkpoint(tmp_path, monkeypatch, small):
    out = tmp_path / "run"
    search(preset="quick", overrides=small("stop_after_epochs=1"), out=out, quiet=True)
    ckpt = checkpoint_path(out)
    before = sha(ckpt)
    real = phases.child_weight_terms
    calls = {"n": 0}

    def poisoned(*args, **kw):
        distill, reconstruction, parts = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            distill = distill * float("nan")
        return distill, reconstruction, parts

    monkeypatch.setattr(phases, "child_weight_terms", poisoned)
    with pytest.raises(NonFiniteLossError) as e:
        search(overrides=["stop_after_epochs=0"], out=out, resume=True, quiet=True)
    msg = str(e.value)
    assert "\n" not in msg
    assert "loss_w_hat loss became nan at round 1/1, child phase, step 2" in msg
    assert f"last good checkpoint: {ckpt}" in msg
    assert sha(ckpt) == before
    assert load_search_checkpoint(ckpt)["epochs_done"] == 1


def test_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch, small):
    real = phases.F.cross_entropy
    monkeypatch.setattr(phases.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("inf"))
    with pytest.raises(NonFiniteLossError, match=r"parent_CE loss became inf at round 1/1, parent phase, "
                                                 r"step 1; last good checkpoint: none"):
        search(preset="quick", overrides=small(), out=tmp_path / "run", quiet=True)
    assert not checkpoint_path(tmp_path / "run").exists()


def test_random_search_resumes_mid_sample(tmp_path, small):
    over = small("random.epochs=2", "random.supervision=label")
    full = search(preset="quick", method="random", overrides=over, out=tmp_path / "full", quiet=True)
    assert [h["sample"] for h in full.history] == [1, 1, 2, 2]
    accs = [h["sample_acc"] for h in full.history if "sample_acc" in h]
    assert len(accs) == 2 and full.summary["final"]["child_acc"] == max(accs)
    search(preset="quick", method="random", overrides=over + ["stop_after_epochs=1"], out=tmp_path / "part",
           quiet=True)
    resumed = search(overrides=["stop_after_epochs=0"], out=tmp_path / "part", resume=True, quiet=True)
    assert resumed.genotype == full.genotype
    assert [h.get("sample_acc") for h in resumed.history] == [h.get("sample_acc") for h in full.history]
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["method"] == "random" and summary["genotype_darts"] == full.genotype.to_darts()


def test_methods_register_themselves():
    from dcpnas.search.methods import REGISTRY, SearchMethod
    from dcpnas.search.methods.dcpnas import DcpNas

    assert REGISTRY.names() == METHODS
    assert set(METHODS) == {"dcpnas", "cpnas", "cpnas-sample", "bnas", "darts", "random"}
    assert REGISTRY["dcpnas"] is REGISTRY["cpnas"] is DcpNas and DcpNas.name == "dcpnas"
    assert all(issubclass(cls, SearchMethod) for cls in REGISTRY.values())
    with pytest.raises(ValueError, match="registered twice"):
        SearchMethod.register("darts")(type("Other", (SearchMethod,), {}))
    assert isinstance(resolve_search_config(preset="quick"), SearchConfig)
