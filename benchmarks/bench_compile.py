#!/usr/bin/env python3
"""Does ``torch.compile`` change the Child ÷ Parent cost? One mixed op (edge) of each supernet,
eager against compiled, interleaved.

Per supernet (Parent: real ops, Child: 1-bit ops; the search's non-affine BN, channels-last) one
``MixedOp`` is timed in two passes: ``full`` (forward, backward into every weight and the mixing
weights: the weight step) and ``alpha`` (forward, gradient of the mixing weights only: the α-step).
The compiled op is a deep copy, so both run the same values. Prints the compile time (the first
forward and backward of each pass) and medians; glibc malloc tuned as ``dcpnas`` runs; tests
never assert on time.

    python benchmarks/bench_compile.py [--C 8 --stride 1 --size 32 --batch 32 --repeats 10]
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.functional as F

from _common import PASSES, edge_arguments, run_pass, set_up
from dcpnas.space.mixed import MixedOp
from dcpnas.space.primitives import PRIMITIVES, OpStyle


def measure(kind: str, args) -> dict:
    """{pass: (eager ms, compiled ms)} and the compile seconds of one supernet's mixed op."""
    torch.manual_seed(0)
    eager = MixedOp(args.C, args.stride, OpStyle(binary=kind == "child", affine=False))
    eager = eager.to(memory_format=torch.channels_last)
    compiled_op = copy.deepcopy(eager)
    compiled = torch.compile(compiled_op, backend=args.backend, dynamic=False)
    x = torch.randn(args.batch, args.C, args.size, args.size).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    w = F.softmax(torch.randn(len(PRIMITIVES)), 0).requires_grad_()
    t0 = time.perf_counter()
    for p in PASSES:
        run_pass(compiled, x, w, p)
    compile_s = time.perf_counter() - t0
    times = {(p, name): [] for p in PASSES for name in ("eager", "compiled")}
    for p in PASSES:                                      # warm-up
        run_pass(eager, x, w, p)
    for _ in range(args.repeats):
        for p in PASSES:
            for name, op in (("eager", eager), ("compiled", compiled)):
                t = time.perf_counter()
                run_pass(op, x, w, p)
                times[(p, name)].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"compile_s": compile_s, **{p: (med[(p, "eager")], med[(p, "compiled")]) for p in PASSES}}


def main(argv=None) -> None:
    ap = edge_arguments(__doc__, repeats=10)
    ap.add_argument("--backend", default="inductor", help="torch.compile backend (tests: aot_eager)")
    args = ap.parse_args(argv)
    set_up(args.threads)
    res = {kind: measure(kind, args) for kind in ("parent", "child")}
    print(f"torch={torch.__version__} backend={args.backend} threads={args.threads} C={args.C} "
          f"stride={args.stride} input={args.batch}×{args.C}×{args.size}² repeats={args.repeats} (medians)\n")
    print("| pass | Parent eager ms | Parent compiled ms | Child eager ms | Child compiled ms "
          "| Child ÷ Parent eager | Child ÷ Parent compiled |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p in PASSES:
        (pe, pc), (ce, cc) = res["parent"][p], res["child"][p]
        print(f"| {p} | {pe:.1f} | {pc:.1f} | {ce:.1f} | {cc:.1f} | {ce / pe:.2f} | {cc / pc:.2f} |")
    print(f"\ncompile time (first full + alpha pass): Parent {res['parent']['compile_s']:.1f} s, "
          f"Child {res['child']['compile_s']:.1f} s")


if __name__ == "__main__":
    main()
