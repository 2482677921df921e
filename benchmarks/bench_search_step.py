#!/usr/bin/env python3
"""Cost of one architecture step: first-order DARTS vs CP-NAS vs DCP-NAS (each curvature mode).

On one Parent/Child supernet pair and one batch, times (median of --repeats after --warmup,
the steps interleaved round-robin so machine load affects them alike):

  child forward (part), child J·v forward-mode (part)
                 a no-grad Child forward and the ggn product's forward-mode J·v pass (yardsticks)
  darts-1st      Parent forward + backward of CE w.r.t. α (a plain first-order DARTS α-step)
  cp-nas         Parent forward (no grad) + Child forward/backward w.r.t. α̂ (λ = 0)
  dcp-nas/...    Parent forward + tangent (one pass) + Child α̂-gradient with curvature
                 fisher K=1, fisher K=4, ggn, exact

and prints a markdown table with ratios to darts-1st and to cp-nas. Then, on a small float64
supernet pair, the cosine between each approximate curvature product and the exact one, for the
direction v = ∂D/∂g_C that the step uses. The table marks two cost targets: fisher ≤ 1.3× cp-nas;
exact ≤ 4× darts-1st.

    python benchmarks/bench_search_step.py [--C 8 --layers 5 --batch 32 --repeats 5 --device cpu]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from _common import build_supernets, time_steps
from dcpnas.search import child_arch_gradient, parent_forward
from dcpnas.search.maths.curvature import GGN, make_curvature
from dcpnas.search.maths.discrepancy import make_distance

FRO = make_distance("fro")

TARGETS = {"dcp-nas fisher K=1": ("cp-nas", 1.3), "dcp-nas exact": ("darts-1st", 4.0)}


def step_functions(parent, child, x, y, lam):
    """name → a closure running one architecture step of that kind."""

    def darts_first_order():
        alphas = parent.arch_parameters()
        loss = F.cross_entropy(parent(x), y)
        return torch.autograd.grad(loss, alphas)

    def cp_nas():
        parent_logits, _ = parent_forward(parent, x, y, need_tangent=False)
        return child_arch_gradient(child, x, parent_logits, None, lam=0.0, distance=FRO,
                                   curvature=make_curvature("ggn")).grad

    def dcp_nas(curvature, **kw):
        curv = make_curvature(curvature, **kw)

        def run():
            parent_logits, tangent = parent_forward(parent, x, y)
            return child_arch_gradient(child, x, parent_logits, tangent, lam=lam, distance=FRO,
                                       curvature=curv).grad
        return run

    from dcpnas.search.maths.curvature import jacobian_vector_product

    v = [torch.randn_like(a) for a in child.arch_parameters()]

    def child_forward():  # the yardstick of the two parts below
        with torch.no_grad():
            return child(x)

    def child_jvp():  # the forward-mode J·v pass of the ggn product alone
        return jacobian_vector_product(child, x, child.arch_parameters(), v)

    return {
        "child forward (part)": child_forward,
        "child J·v forward-mode (part)": child_jvp,
        "darts-1st": darts_first_order,
        "cp-nas": cp_nas,
        "dcp-nas fisher K=1": dcp_nas(curvature="fisher"),
        "dcp-nas fisher K=4": dcp_nas(curvature="fisher", fisher_microbatches=4),
        "dcp-nas ggn": dcp_nas(curvature="ggn"),
        "dcp-nas ggn reverse-mode": dcp_nas(curvature=GGN(jvp="reverse")),
        "dcp-nas exact": dcp_nas(curvature="exact"),
    }


def curvature_cosines(args, device):
    """cos(product_mode, product_exact) and norm ratios for v = ∂D/∂g_C (fro) on a small float64
    pair, at the Parent's targets and near fit (targets = the Child's logits + 0.05·noise, where
    theory says GGN → exact and the Fisher sign is right)."""
    from dcpnas.search import (ChildGraph, child_objective_per_sample, consistent_derivatives,
                               curvature_product, discrepancy_direction)

    parent, child = build_supernets(args.small_C, args.small_layers, args.classes, device, torch.float64,
                          seed=1)
    g = torch.Generator(device="cpu").manual_seed(2)
    x = torch.randn(args.small_batch, 3, args.size, args.size, generator=g,
                    dtype=torch.float64).to(device)
    y = torch.randint(0, args.classes, (args.small_batch,), generator=g).to(device)
    parent.eval()
    parent_logits, tangent = parent_forward(parent, x, y)
    with torch.no_grad():
        noise = torch.randn(parent_logits.shape, generator=g, dtype=torch.float64).to(device)
        near_fit = child(x) + 0.05 * noise
    K = args.small_batch
    modes = [("ggn", {}), ("fisher K=1", {}), ("fisher K=4", {"fisher_microbatches": 4}),
             (f"fisher K={K} (per sample)", {"fisher_microbatches": K})]
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    results = {name: [] for name, _ in modes}
    alphas = child.arch_parameters()
    for targets in (parent_logits, near_fit):
        with consistent_derivatives(child):
            logits = child(x)
        per_sample = child_objective_per_sample(logits, targets)
        g_C = torch.autograd.grad(per_sample.mean(), alphas, create_graph=True)
        v = discrepancy_direction([t.detach() for t in g_C], tangent, "fro")
        graph = ChildGraph(child, x, alphas, logits, per_sample, g_C, retain=True)
        for name, kw in modes:  # the approximations first: exact consumes the graph
            prod = flat(curvature_product(name.split()[0], graph, v, **kw))
            results[name].append(prod)
        exact = flat(curvature_product("exact", graph, v))
        for name, _ in modes:
            prod = results[name].pop()
            results[name].append((F.cosine_similarity(prod, exact, dim=0).item(),
                                  (prod.norm() / exact.norm()).item()))
    return results


def subbatch_cosines(parent, child, x, y, lam, fractions):
    """For each curvature fraction f: the GGN product on each disjoint sub-batch of ⌈f·B⌉ images
    against the whole batch's, and the α̂-step −g_C + λ·product against the whole-batch step
    (``objective.curvature_fraction``; g_C always from the whole batch). Mean and min over the
    sub-batches."""
    from dcpnas.search import ChildGraph, child_objective_per_sample, discrepancy_direction
    from dcpnas.search.maths.curvature import fresh_ggn_product, subbatch_size

    alphas = child.arch_parameters()
    parent_logits, tangent = parent_forward(parent, x, y)
    logits = child(x)
    per_sample = child_objective_per_sample(logits, parent_logits)
    g_C = torch.autograd.grad(per_sample.mean(), alphas, retain_graph=True)
    v = discrepancy_direction(list(g_C), tangent, "fro", scale="tangent")
    full = GGN().product(ChildGraph(child, x, alphas, logits, per_sample, g_C), v)
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    full, neg_g = flat(full), -flat(g_C)
    full_step = neg_g + lam * full
    rho = (lam * full.norm() / neg_g.norm()).item()
    rows = {}
    B = x.shape[0]
    for f in fractions:
        m = subbatch_size(B, f)
        cos_p, cos_s, ratio = [], [], []
        for start in range(0, B - m + 1, m):
            sub = flat(fresh_ggn_product(child, x[start:start + m], alphas, v))
            cos_p.append(F.cosine_similarity(sub, full, dim=0).item())
            cos_s.append(F.cosine_similarity(neg_g + lam * sub, full_step, dim=0).item())
            ratio.append((sub.norm() / full.norm()).item())
        rows[f] = (m, len(cos_p), statistics.mean(cos_p), min(cos_p), statistics.mean(ratio),
                   statistics.mean(cos_s), min(cos_s))
    return rho, rows


def _fractions(args):
    return [float(f) for f in args.fractions.split(",")]


def print_subbatch_table(results, lam, where):
    """One row per fraction, pooled over ``results`` (one ``subbatch_cosines`` per batch)."""
    rhos = [rho for rho, _ in results]
    print(f"\nGGN product on a curvature sub-batch vs the whole batch's ({where}; λ = {lam}; "
          f"ρ = ‖λ·H v‖/‖g_C‖ on the whole batch {statistics.mean(rhos):.3g}, "
          f"{len(results)} batch(es)):\n")
    print("| fraction | images | sub-batches | cos(product), mean | min | ‖·‖ ratio, mean "
          "| cos(α̂-step), mean | min |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in results[0][1]:
        rows = [r[f] for _, r in results]
        n = sum(r[1] for r in rows)
        mean = lambda i: sum(r[i] * r[1] for r in rows) / n  # noqa: E731  (pooled over sub-batches)
        print(f"| {f:g} | {rows[0][0]} | {n} | {mean(2):+.3f} | {min(r[3] for r in rows):+.3f} | "
              f"{mean(4):.3g} | {mean(5):+.4f} | {min(r[6] for r in rows):+.4f} |")


def subbatch_from_run(args, device):
    """The sub-batch table on a search run's trained Parent and Child (its last checkpoint)."""
    from dcpnas.config import from_dict
    from dcpnas.search.run.checkpoint import checkpoint_path, load_search_checkpoint
    from dcpnas.search.config import SearchConfig
    from dcpnas.search.run.inputs import build_search_data
    from dcpnas.search.run.learner import build_supernet
    from dcpnas.utils.distributed import DistEnv

    state = load_search_checkpoint(checkpoint_path(args.from_run))
    cfg = from_dict(SearchConfig, state["config"])
    data = build_search_data(cfg, DistEnv(device=device))
    nets = {}
    for kind in ("parent", "child"):
        nets[kind] = build_supernet(kind, cfg, data.in_channels, data.num_classes, device)
        nets[kind].load_state_dict(state["method_state"][kind]["net"])
        nets[kind].train(True)
    results = []
    for i, (x, y) in enumerate(data.val):
        if i == args.batches:
            break
        results.append(subbatch_cosines(nets["parent"], nets["child"], x, y, cfg.lam,
                                        _fractions(args)))
    print_subbatch_table(results, cfg.lam, f"{args.from_run} after {state['epochs_done']} "
                         f"epochs, search-val batches of {cfg.data.batch_size}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=32, help="input height = width")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--lam", type=float, default=0.03)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--small-C", type=int, default=4)
    p.add_argument("--small-layers", type=int, default=3)
    p.add_argument("--small-batch", type=int, default=8)
    p.add_argument("--only", default="", help="comma-separated step names to time (default all)")
    p.add_argument("--from-run", metavar="DIR",
                   help="sub-batch table only: the trained supernets of a search run's checkpoint "
                        "(DIR/ckpt/last.pt) on --batches of its search-val batches")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--fractions", default="0.5,0.25,0.125",
                   help="curvature sub-batch fractions to compare with the whole batch ('' skips)")
    args = p.parse_args(argv)
    from dcpnas.utils.allocator import tune_cpu_allocator
    tune_cpu_allocator()                     # as the dcpnas command runs (utils/allocator.py)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.from_run:
        return subbatch_from_run(args, device)
    parent, child = build_supernets(args.C, args.layers, args.classes, device, torch.float32)
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(device)
    y = torch.randint(0, args.classes, (args.batch,), generator=g).to(device)
    steps = step_functions(parent, child, x, y, args.lam)
    if args.only:
        steps = {k: v for k, v in steps.items() if k in args.only.split(",")}

    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"C={args.C} layers={args.layers} batch={args.batch} size={args.size} "
          f"repeats={args.repeats} warmup={args.warmup} lam={args.lam}\n")
    # The Parent trains (BN batch statistics) in its own DARTS step and is frozen otherwise.
    stats = time_steps(steps, device, args.warmup, args.repeats,
                       before=lambda name: parent.train(name == "darts-1st"))
    times = {name: med for name, (med, _) in stats.items()}

    base, cp = times.get("darts-1st"), times.get("cp-nas")
    print("| step | median ms | min ms | × darts-1st | × cp-nas | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, t in times.items():
        r1 = f"{t / base:.2f}" if base else "–"
        r2 = f"{t / cp:.2f}" if cp else "–"
        target = ""
        if name in TARGETS:
            ref, limit = TARGETS[name]
            if ref in times:
                ok = t / times[ref] <= limit
                target = f"≤ {limit}× {ref}: {'met' if ok else 'missed'}"
        print(f"| {name} | {t * 1e3:.1f} | {stats[name][1] * 1e3:.1f} | {r1} | {r2} | {target} |")

    if args.fractions:
        print_subbatch_table([subbatch_cosines(parent, child, x, y, args.lam, _fractions(args))],
                             args.lam, "float32, the timed pair at initialisation")

    print(f"\nCurvature products vs exact (float64, C={args.small_C}, layers={args.small_layers}, "
          f"batch={args.small_batch}, v = ∂D/∂g_C with D = F-norm):\n")
    print("| mode | cos, Parent targets | ‖·‖/‖exact‖ | cos, near fit | ‖·‖/‖exact‖ |")
    print("|---|---:|---:|---:|---:|")
    for name, ((c1, r1), (c2, r2)) in curvature_cosines(args, device).items():
        print(f"| {name} | {c1:+.3f} | {r1:.3g} | {c2:+.3f} | {r2:.3g} |")


if __name__ == "__main__":
    main()
