#!/usr/bin/env python3
"""The CPU fast paths of ``dcpnas.kernels`` against torch's native kernels, op by op.

For each shape: forward + backward of the op (batch statistics for BN), channels-last input, the
native and the fast path timed round-robin (``_common.time_steps``), medians; plus NCHW
native BN for reference. BN runs twice: with a channels-last gradient and with an NCHW one (what
the global pool's and FactorizedReduce's backward hand back inside a network). The shapes are those
of the ``fashion-mnist`` train preset (C 8, batch 256, 28×28) and search supernet (C 4, batch 64,
14×14). The mixed op's shared input stage (``MixedOp``: one BN / ReLU of the edge input for every
candidate that opens with it) against one per op, forward + backward of one Child and one Parent
edge at the search sizes. And the Child's PReLU (``space.ops.PReLU``, whose CPU backward is float-only) against
``nn.PReLU``. glibc malloc runs with the settings ``dcpnas`` sets at start-up
(``utils/allocator.py``) unless ``--malloc default``: with glibc's own thresholds every fresh
temporary of these sizes is page-faulted in again, which dwarfs some kernels' own cost.

    python benchmarks/bench_kernels.py [--threads 2 --repeats 9 --malloc tuned]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _common import time_steps
from dcpnas.binary import hard_sign
from dcpnas.kernels import BatchNorm2d, conv2d, native_kernels
from dcpnas.space.mixed import MixedOp
from dcpnas.space.ops import PReLU
from dcpnas.space.primitives import PRIMITIVES, OpStyle
from dcpnas.utils.allocator import tune_cpu_allocator

CL = torch.channels_last
BN_SHAPES = [(256, 8, 28, 28), (256, 16, 14, 14), (256, 32, 7, 7), (64, 4, 14, 14), (64, 8, 7, 7),
             (256, 24, 28, 28)]                    # the last: a DARTS stem of 3C at C 8
BN_NCHW_GRAD_SHAPES = [(256, 8, 28, 28), (256, 32, 7, 7), (256, 128, 7, 7), (64, 16, 7, 7)]
# (shape, kernel, stride): dilation 2, padding d(k−1)/2 as the dil_conv candidates
DW_CASES = [((256, 8, 28, 28), 3, 1), ((256, 8, 28, 28), 5, 1), ((256, 16, 28, 28), 5, 2),
            ((256, 32, 14, 14), 5, 2), ((256, 32, 7, 7), 5, 1), ((64, 4, 14, 14), 5, 2),
            ((64, 8, 7, 7), 5, 1)]


def _native(fn):
    def run():
        with native_kernels():
            fn()
    return run


def bn_steps(shape, grad_layout=CL):
    x = torch.randn(shape).contiguous(memory_format=CL).requires_grad_()
    g = torch.randn(shape).contiguous(memory_format=grad_layout)
    x_nchw = x.detach().contiguous().requires_grad_()
    bn = BatchNorm2d(shape[1])

    def fast():
        bn(x).backward(g)

    def nchw():
        with native_kernels():
            bn(x_nchw).backward(g.contiguous())
    return {"fast path": fast, "native": _native(fast), "native, NCHW input": nchw}


def dw_steps(shape, k, s):
    C, d = shape[1], 2
    p = d * (k - 1) // 2
    x = torch.randn(shape).contiguous(memory_format=CL).requires_grad_()
    w = torch.randn(C, 1, k, k).contiguous(memory_format=CL).requires_grad_()
    g = torch.randn_like(F.conv2d(x, w, None, s, p, d, C))

    def fast():
        conv2d(x, w, None, s, p, d, C).backward(g)
    return {"fast path": fast, "native": _native(fast)}


def sign_steps(shape):
    """``hard_sign`` (copysign of x + 0) against the comparison form it replaced."""
    x = torch.randn(shape).contiguous(memory_format=CL)
    one = x.new_ones(())
    return {"copysign": lambda: hard_sign(x), "where": lambda: torch.where(x >= 0, one, -one)}


def prelu_steps(shape):
    """Forward + backward of the Child's PReLU against torch's nn.PReLU, channels-last."""
    x = torch.randn(shape).contiguous(memory_format=CL).requires_grad_()
    g = torch.randn(shape).contiguous(memory_format=CL)
    ours, native = PReLU(shape[1]), torch.nn.PReLU(shape[1])
    return {"ours": lambda: ours(x).backward(g), "native": lambda: native(x).backward(g)}


# (C, H=W, batch, stride) of a search edge: fashion-mnist supernet, issue-9 size (C 8, 32×32, batch 32)
EDGE_CASES = [(4, 14, 64, 1), (8, 32, 32, 1), (16, 32, 32, 2), (16, 16, 32, 1)]


def edge_steps(C, hw, batch, stride, binary):
    """One supernet edge (MixedOp, search BN), forward + backward: shared input stage or one per op."""
    torch.manual_seed(0)
    shared = MixedOp(C, stride, OpStyle(binary=binary, affine=False)).to(memory_format=CL)
    per_op = MixedOp(C, stride, OpStyle(binary=binary, affine=False), share_input_stage=False)
    per_op.load_state_dict(shared.state_dict())
    per_op = per_op.to(memory_format=CL)
    x = torch.randn(batch, C, hw, hw).contiguous(memory_format=CL).requires_grad_()
    w = F.softmax(torch.randn(len(PRIMITIVES)), 0).requires_grad_()

    def run(op):
        y = op(x, w)
        y.backward(torch.ones_like(y))
    return {"per op": lambda: run(per_op), "shared": lambda: run(shared)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                    help="glibc malloc thresholds: dcpnas's (tuned) or glibc's own")
    args = ap.parse_args(argv)
    tuned = tune_cpu_allocator() if args.malloc == "tuned" else False   # default: left as glibc has it
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"torch={torch.__version__} threads={args.threads} repeats={args.repeats} malloc="
          f"{'tuned' if tuned else 'glibc default'} (medians, forward + backward, channels-last)\n")
    print("| BatchNorm2d input | gradient | native ms | fast path ms | native ÷ fast | native NCHW ms |")
    print("|---|---|---:|---:|---:|---:|")
    cases = [(s, CL) for s in BN_SHAPES] + [(s, torch.contiguous_format) for s in BN_NCHW_GRAD_SHAPES]
    for shape, layout in cases:
        t = time_steps(bn_steps(shape, layout), cpu, args.warmup, args.repeats)
        print(f"| {'×'.join(map(str, shape))} | {'NHWC' if layout is CL else 'NCHW'} | "
              f"{t['native'][0] * 1e3:.2f} | {t['fast path'][0] * 1e3:.2f} | "
              f"{t['native'][0] / t['fast path'][0]:.2f} | {t['native, NCHW input'][0] * 1e3:.2f} |")
    print("\n| dilated depthwise conv (d 2) | native ms | fast path ms | native ÷ fast |")
    print("|---|---:|---:|---:|")
    for shape, k, s in DW_CASES:
        t = time_steps(dw_steps(shape, k, s), cpu, args.warmup, args.repeats)
        print(f"| {'×'.join(map(str, shape))}, k {k}, stride {s} | {t['native'][0] * 1e3:.2f} | "
              f"{t['fast path'][0] * 1e3:.2f} | {t['native'][0] / t['fast path'][0]:.2f} |")
    pair_table("hard_sign input (forward)", sign_steps, ("where", "where(x >= 0, 1, −1)"),
               ("copysign", "copysign(1, x + 0)"), args)
    # + the search size (a 5-cell C 8 supernet's stage-1 tensors at batch 32, 32×32 input)
    pair_table("PReLU input", prelu_steps, ("native", "nn.PReLU"), ("ours", "space.ops.PReLU"), args,
               shapes=[(32, 8, 32, 32)])
    print("\n| supernet edge (MixedOp), forward + backward | one input stage per op ms | shared ms "
          "| shared ÷ per op |")
    print("|---|---:|---:|---:|")
    for binary in (True, False):
        for C, hw, batch, stride in EDGE_CASES:
            t = time_steps(edge_steps(C, hw, batch, stride, binary), cpu, args.warmup, args.repeats)
            print(f"| {'Child' if binary else 'Parent'} {batch}×{C}×{hw}², stride {stride} | "
                  f"{t['per op'][0] * 1e3:.2f} | {t['shared'][0] * 1e3:.2f} | "
                  f"{t['shared'][0] / t['per op'][0]:.2f} |")


def pair_table(title, make_steps, base, ours, args, shapes=()):
    """One table of two implementations over the batch-256 BN shapes (and ``shapes``): ms each
    and base ÷ ours."""
    print(f"\n| {title} | {base[1]} ms | {ours[1]} ms | ratio |")
    print("|---|---:|---:|---:|")
    for shape in [s for s in BN_SHAPES if s[0] == 256] + list(shapes):
        t = time_steps(make_steps(shape), torch.device("cpu"), args.warmup, args.repeats)
        print(f"| {'×'.join(map(str, shape))} | {t[base[0]][0] * 1e3:.2f} | {t[ours[0]][0] * 1e3:.2f} | "
              f"{t[base[0]][0] / t[ours[0]][0]:.2f} |")

if __name__ == "__main__":
    main()
