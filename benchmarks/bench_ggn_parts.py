#!/usr/bin/env python3
"""Where a `ggn` α̂-step's time goes: its passes timed apart, channels-last, as the search runs them.

On one Parent/Child supernet pair and one batch (medians of --repeats after one warm-up pass, the
parts interleaved round-robin), times:

  teacher            no-grad Parent forward (G's target; all a CP-NAS α̂-step needs of the Parent)
  tangent            Parent forward + backward w.r.t. α (target and g_P from one forward; the
                     pass of the Parent's own α-step)
  parent weights     Parent forward + backward of the label CE into every weight (the pass of the
                     Parent's weight step): with ``tangent``, the yardstick of a Parent pair, which
                     holds two of these passes where a Child pair holds two teacher forwards
  child forward      no-grad Child forward (the yardstick)
  g_C                Child forward + backward w.r.t. α̂ (the CP-NAS α̂-step's Child part)
  g_C + ggn          the same with the graph kept, forward-mode J·v and the VJP Jᵀu on that graph
  J·v                the forward-mode pass alone (dual tensors, no grad)
  fresh ggn, B/4     ``fresh_ggn_product`` on the first quarter of the batch (curvature_fraction)
  fresh ggn, B       the same on the whole batch

``--profile PART`` prints ``torch.profiler``'s table for one run of that part instead.

    python benchmarks/bench_ggn_parts.py [--C 8 --layers 5 --batch 32 --size 32 --threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import build_supernets, set_up
from dcpnas.search import child_objective_per_sample, discrepancy_direction, parent_forward
from dcpnas.search.maths.curvature import (fresh_ggn_product, jacobian_vector_product,
                                     logit_hessian_product)


def parts(parent, child, x, y):
    alphas = child.arch_parameters()
    targets, tangent = parent_forward(parent, x, y)

    def g_C(keep=False):
        logits = child(x, alphas=alphas)
        G = child_objective_per_sample(logits, targets).mean()
        return logits, torch.autograd.grad(G, alphas, retain_graph=keep)

    v = discrepancy_direction(list(g_C()[1]), tangent, "fro", scale="tangent")

    def g_C_ggn():
        logits, _ = g_C(keep=True)
        z, jv = jacobian_vector_product(child, x, alphas, v)
        torch.autograd.grad(logits, alphas, grad_outputs=logit_hessian_product(z, jv))

    def no_grad(net):
        def run():
            with torch.no_grad():
                net(x)
        return run

    weights = [p for p in parent.parameters() if all(p is not a for a in parent.arch_parameters())]

    def parent_weights():
        loss = torch.nn.functional.cross_entropy(parent(x), y)
        torch.autograd.grad(loss, weights)

    quarter = x[: max(2, x.shape[0] // 4)]
    return {"teacher": no_grad(parent), "tangent": lambda: parent_forward(parent, x, y),
            "parent weights": parent_weights,
            "child forward": no_grad(child), "g_C": g_C, "g_C + ggn": g_C_ggn,
            "J·v": lambda: jacobian_vector_product(child, x, alphas, v),
            "fresh ggn, B/4": lambda: fresh_ggn_product(child, quarter, alphas, v),
            "fresh ggn, B": lambda: fresh_ggn_product(child, x, alphas, v)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", metavar="PART", help="profile one part instead of timing")
    args = ap.parse_args()
    set_up(args.threads)
    cl = torch.channels_last
    parent, child = (n.to(memory_format=cl) for n in build_supernets(args.C, args.layers, 10,
                                                             torch.device("cpu"), torch.float32))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g).contiguous(memory_format=cl)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    fns = parts(parent, child, x, y)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        fns[args.profile]()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fns[args.profile]()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        return
    samples = {k: [] for k in fns}
    for rep in range(args.repeats + 1):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if rep:
                samples[k].append(time.perf_counter() - t0)
    print(f"threads={args.threads} C={args.C} layers={args.layers} batch={args.batch} "
          f"size={args.size} channels-last, medians of {args.repeats}\n")
    base = statistics.median(samples["child forward"])
    print("| part | median ms | × child forward |\n|---|---:|---:|")
    for k, t in samples.items():
        m = statistics.median(t)
        print(f"| {k} | {m * 1e3:.0f} | {m / base:.2f} |")
    pair = statistics.median(samples["parent weights"]) + statistics.median(samples["tangent"])
    print(f"\ntwo teacher forwards ÷ (parent weights + tangent), a CP-NAS Child pair's Parent work "
          f"against a Parent pair's passes: {2 * statistics.median(samples['teacher']) / pair:.2f}")


if __name__ == "__main__":
    main()
