#!/usr/bin/env python3
"""Where the Parent pair's and the Child pair's time goes, op by op.

Builds one method's supernets exactly as ``bench_search_round.py`` does (``_common.build_round``:
same seed, batches and channels-last layout), warms up, then per part (Parent pair, Child pair) runs it once plainly and
once under a ``TorchDispatchMode`` that times every aten call. Prints, per aten op, the time and
the number of calls in each part, and a last row ``outside aten ops``: the plain wall time less
the ops' time, i.e. Python (modules, the ``autograd.Function``s), the autograd engine and
allocation between kernels. ``torch.profiler``'s self-CPU figures at these sizes were several
times too high for some elementwise ops in one run and not in the next; the dispatch timer
measures each op between its own two clock reads.

    python benchmarks/bench_op_breakdown.py [--variant cpnas --C 8 --layers 5 --batch 32 --size 32]
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from _common import ROUND_VARIANTS, add_size_arguments, build_round, run_pair, set_up


class OpTimer(TorchDispatchMode):
    """Seconds and calls per aten op (overload packet name) of everything run inside it."""

    def __init__(self):
        super().__init__()
        self.stats = collections.defaultdict(lambda: [0, 0.0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        entry = self.stats[func.overloadpacket.__name__]
        entry[0] += 1
        entry[1] += time.perf_counter() - t0
        return out


def breakdown(pairs, batch, warmup: int):
    for _ in range(warmup):
        for steps in pairs.values():
            run_pair(steps, batch)
    result = {}
    for part, steps in pairs.items():
        t0 = time.perf_counter()
        run_pair(steps, batch)
        wall = time.perf_counter() - t0
        timer = OpTimer()
        with timer:
            run_pair(steps, batch)
        result[part] = (wall, dict(timer.stats))
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="cpnas", choices=list(ROUND_VARIANTS))
    add_size_arguments(ap)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args(argv)
    set_up(args.threads)
    pairs, batch = build_round(args.variant, args, torch.device("cpu"))
    result = breakdown(pairs, batch, args.warmup)
    parts = list(result)
    ops = sorted({k for _, s in result.values() for k in s},
                 key=lambda k: -sum(s.get(k, (0, 0.0))[1] for _, s in result.values()))
    print(f"variant={args.variant} torch={torch.__version__} threads={args.threads} C={args.C} "
          f"layers={args.layers} batch={args.batch} input={args.channels}×{args.size}² (one run each)\n")
    print("| aten op | " + " | ".join(f"{p} ms | calls" for p in parts) + " | Child − Parent ms |")
    print("|---|" + "---:|---:|" * len(parts) + "---:|")

    def cells(values):
        return " | ".join(f"{t * 1e3:.0f} | {n}" for n, t in values)

    def diff(values):
        return f"{(values[-1][1] - values[0][1]) * 1e3:+.0f}" if len(values) > 1 else ""

    for op in ops[:args.rows]:
        vals = [result[p][1].get(op, (0, 0.0)) for p in parts]
        print(f"| {op} | {cells(vals)} | {diff(vals)} |")
    rest = [(sum(n for n, _ in s.values()) - sum(s.get(o, (0, 0))[0] for o in ops[:args.rows]),
             sum(t for _, t in s.values()) - sum(s.get(o, (0, 0.0))[1] for o in ops[:args.rows]))
            for _, s in (result[p] for p in parts)]
    print(f"| other aten ops | {cells(rest)} | {diff(rest)} |")
    outside = [(0, wall - sum(t for _, t in s.values())) for wall, s in (result[p] for p in parts)]
    print(f"| outside aten ops | {cells(outside)} | {diff(outside)} |")
    total = [(sum(n for n, _ in s.values()), wall) for wall, s in (result[p] for p in parts)]
    print(f"| **wall** | {cells(total)} | {diff(total)} |")
    if len(parts) > 1:
        print(f"\nChild pair ÷ Parent pair: {total[-1][1] / total[0][1]:.2f}")


if __name__ == "__main__":
    main()
