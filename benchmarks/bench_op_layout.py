#!/usr/bin/env python3
"""What each part of the 1-bit op layout costs: one Child edge with one part removed at a time,
against the Parent's edge, interleaved (a cost attribution, not a search option).

The 1-bit sep/dil block (``space/ops.py``, the official DCP-NAS layout) is BN → binary conv →
BN → PReLU → binary conv → BN (+ identity shortcut at stride 1) → PReLU; the real one (DARTS) is
ReLU → conv → conv → BN. Each variant below removes one part from every ``DilConv`` of the Child
edge (separable convs are two of them); ``real weights`` / ``real activations`` switch the binary
convs' binarisers off, so ``real w+a`` is the 1-bit *layout* with real-valued arithmetic. Each
variant computes something different from the Child: these are cost attributions, never a search.
Passes as in ``bench_compile.py``: ``full`` (weight step) and ``alpha`` (mixing-weight gradient
only); medians; glibc malloc tuned as ``dcpnas`` runs; tests never assert on time.

    python benchmarks/bench_op_layout.py [--C 8 --stride 1 --size 32 --batch 32 --repeats 15]

``--round child "no mid BN" ...`` times, instead, CP-NAS's Parent and Child pairs at the search size
(the round benchmark's supernets and batch, ``_common.build_round``) with the whole Child supernet edited so:

    python benchmarks/bench_op_layout.py --round child "no mid BN" "no mid BN + PReLU" --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import PASSES, build_round, edge_arguments, run_pair, run_pass, set_up
from dcpnas.binary import binary_convs
from dcpnas.space.mixed import MixedOp
from dcpnas.space.ops import DilConv
from dcpnas.space.primitives import PRIMITIVES, OpStyle

# DilConv.op positions in the 1-bit layout: 0 BN (input stage), 1 depthwise, 2 BN, 3 PReLU,
# 4 pointwise, 5 BN; DilConv.act is the output PReLU.
MID_BN, MID_PRELU = 2, 3


def _in_blocks(edit):
    def apply(edge: nn.Module) -> None:
        for m in edge.modules():
            if isinstance(m, DilConv):
                edit(m)
    return apply


def _drop(*positions):
    def edit(block: DilConv) -> None:
        for i in positions:
            block.op[i] = nn.Identity()
    return edit


def _set(name, value):
    def edit(block: DilConv) -> None:
        setattr(block, name, value)
    return edit


def _binarisers_off(*switches):
    def apply(edge: nn.Module) -> None:
        for conv in binary_convs(edge):
            for s in switches:
                setattr(conv, s, False)
    return apply


# variant name → edit of a freshly built Child edge (None: the Child as the search runs it)
VARIANTS = {
    "child": None,
    "no mid BN": _in_blocks(_drop(MID_BN)),
    "no mid PReLU": _in_blocks(_drop(MID_PRELU)),
    "no mid BN + PReLU": _in_blocks(_drop(MID_BN, MID_PRELU)),
    "no output PReLU": _in_blocks(_set("act", None)),
    "no shortcut": _in_blocks(_set("shortcut", False)),
    "real weights": _binarisers_off("binary_weights"),
    "real activations": _binarisers_off("binary_activations"),
    "real w+a": _binarisers_off("binary_weights", "binary_activations"),
}


def build(binary: bool, args, edit=None) -> nn.Module:
    torch.manual_seed(0)
    edge = MixedOp(args.C, args.stride, OpStyle(binary=binary, affine=False))
    if edit is not None:
        edit(edge)
    return edge.to(memory_format=torch.channels_last)


def measure(args) -> dict:
    """{(variant, pass): median ms}; "parent" is the real edge."""
    edges = {"parent": build(False, args)}
    edges.update({name: build(True, args, edit) for name, edit in VARIANTS.items()})
    x = torch.randn(args.batch, args.C, args.size, args.size).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    w = F.softmax(torch.randn(len(PRIMITIVES)), 0).requires_grad_()
    times = {(name, p): [] for name in edges for p in PASSES}
    for name, edge in edges.items():                      # warm-up
        for p in PASSES:
            run_pass(edge, x, w, p)
    for _ in range(args.repeats):                         # interleaved: every variant each repeat
        for name, edge in edges.items():
            for p in PASSES:
                t = time.perf_counter()
                run_pass(edge, x, w, p)
                times[(name, p)].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def measure_round(args) -> dict:
    """{(variant, pair): median ms}: CP-NAS's Parent and Child pairs at the search size, the Child
    supernet edited as ``VARIANTS[variant]`` (``_common.build_round``), interleaved."""
    size = argparse.Namespace(C=args.C, layers=args.layers, batch=args.batch, size=args.size,
                              channels=3, overrides=[])
    built = {name: build_round("cpnas", size, torch.device("cpu"), VARIANTS[name])
             for name in args.round}
    times = {(name, pair): [] for name, (pairs, _) in built.items() for pair in pairs}
    for pairs, batch in built.values():                   # warm-up
        for steps in pairs.values():
            run_pair(steps, batch)
    for _ in range(args.repeats):
        for name, (pairs, batch) in built.items():
            for pair, steps in pairs.items():
                t = time.perf_counter()
                run_pair(steps, batch)
                times[(name, pair)].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def print_round(args, med) -> None:
    # the Parent is the same in every variant: its pooled median is the steadier denominator
    pooled = statistics.median(med[(name, "parent pair")] for name in args.round)
    print(f"CP-NAS round, C={args.C} layers={args.layers} input={args.batch}×3×{args.size}² "
          f"threads={args.threads} repeats={args.repeats} (medians)\n")
    print("| Child supernet | Parent pair ms | Child pair ms | Child ÷ Parent | Child ÷ pooled Parent |")
    print("|---|---:|---:|---:|---:|")
    for name in args.round:
        p, c = med[(name, "parent pair")], med[(name, "child pair")]
        print(f"| {name} | {p:.0f} | {c:.0f} | {c / p:.2f} | {c / pooled:.2f} |")


def main(argv=None) -> None:
    ap = edge_arguments(__doc__, repeats=15)
    ap.add_argument("--round", nargs="+", choices=list(VARIANTS), metavar="VARIANT",
                    help="instead of one edge, time CP-NAS's Parent and Child pairs with the whole Child "
                         "supernet edited as each VARIANT (e.g. child 'no mid BN + PReLU')")
    ap.add_argument("--layers", type=int, default=5, help="cells, with --round")
    args = ap.parse_args(argv)
    set_up(args.threads)
    if args.round:
        print_round(args, measure_round(args))
        return
    med = measure(args)
    print(f"torch={torch.__version__} threads={args.threads} C={args.C} stride={args.stride} "
          f"input={args.batch}×{args.C}×{args.size}² repeats={args.repeats} (medians, channels-last)\n")
    print("| edge | full ms | ÷ Parent | alpha ms | ÷ Parent |")
    print("|---|---:|---:|---:|---:|")
    for name in ("parent", *VARIANTS):
        f, a = med[(name, "full")], med[(name, "alpha")]
        print(f"| {name} | {f:.1f} | {f / med[('parent', 'full')]:.2f} "
              f"| {a:.1f} | {a / med[('parent', 'alpha')]:.2f} |")


if __name__ == "__main__":
    main()
