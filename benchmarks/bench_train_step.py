#!/usr/bin/env python3
"""Cost of one training step of a derived network: real-valued vs 1-bit, and the 1-bit step with the
binarisers as ``autograd.Function`` (the package's) vs the ``s + (sign − s).detach()`` form; both
real-valued and 1-bit (Function) also in channels-last memory format, with and without the CPU fast
paths of ``dcpnas.kernels`` (narrow channels-last BatchNorm, dilated depthwise conv backward); and the
1-bit channels-last step with glibc's static default malloc thresholds (128 KiB mmap and trim)
against ``dcpnas.utils.allocator``'s (which ``dcpnas`` sets at start-up), toggled before each step
inside this one process. A process that never calls mallopt has glibc's dynamic mmap threshold,
which lands between the two (its page faults per step show where), so that row bounds the gain
from above.

One step = forward + cross-entropy + backward + AdamW update on one fixed batch. The variants are
timed round-robin (``_common.time_steps``), so machine load hits them alike; the table
gives medians and ratios to the real-valued step.

    python benchmarks/bench_train_step.py [--genotype DDPNAS_MCN_2 --C 4 --layers 4 --batch 256 --size 28]
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics

import torch
import torch.nn.functional as F

import dcpnas.binary.layers as binary_layers
from _common import time_steps
from dcpnas.binary import approx_sign, weight_sign
from dcpnas.kernels import native_kernels
from dcpnas.space.genotype import load_genotype
from dcpnas.space.network import build_network
from dcpnas.utils.allocator import restore_default_allocator, tune_cpu_allocator


def _detach_trick(surrogate):
    def binarise(x):
        s = surrogate(x)
        return s + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - s).detach()
    return binarise


DETACH = {
    "approx_sign": _detach_trick(lambda x: torch.where(x.abs() < 1, 2 * x - x * x.abs(), torch.sign(x))),
    "weight_sign": _detach_trick(lambda w: torch.where(w.abs() <= 1, w, torch.sign(w))),
}
FUNCTION = {"approx_sign": approx_sign, "weight_sign": weight_sign}


def train_step(model, x, y):
    opt = torch.optim.AdamW(model.parameters(), 1e-3)

    def run():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return run


def native(run):
    """The same step with dcpnas.kernels' CPU fast paths off (torch's own BN and conv kernels)."""
    def run_native():
        with native_kernels():
            run()
    return run_native


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genotype", default="DDPNAS_MCN_2")
    p.add_argument("--C", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    genotype = load_genotype(args.genotype)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.in_channels, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    nets = {binary: build_network(genotype, binary=binary, in_channels=args.in_channels, C=args.C,
                                  layers=args.layers) for binary in (False, True)}
    # Channels-last copies (what ``dcpnas train`` runs by default on CPU and CUDA, use_channels_last).
    cl = torch.channels_last
    nets_cl = {b: copy.deepcopy(n).to(memory_format=cl) for b, n in nets.items()}
    x_cl = x.contiguous(memory_format=cl)
    steps = {"real-valued": train_step(nets[False], x, y),
             "1-bit, Function binarisers": train_step(nets[True], x, y),
             "1-bit, detach-trick binarisers": train_step(nets[True], x, y),
             "real-valued, channels-last": train_step(nets_cl[False], x_cl, y),
             "1-bit, Function binarisers, channels-last": train_step(nets_cl[True], x_cl, y),
             "real-valued, channels-last, native kernels": native(train_step(nets_cl[False], x_cl, y)),
             "1-bit, channels-last, native kernels": native(train_step(nets_cl[True], x_cl, y))}
    if tune_cpu_allocator():
        steps["1-bit, channels-last, glibc static default malloc"] = train_step(nets_cl[True], x_cl, y)

    def select(name):
        if "default malloc" in name:
            restore_default_allocator()
        else:
            tune_cpu_allocator()
        impl = DETACH if "detach" in name else FUNCTION
        for attr, fn in impl.items():
            setattr(binary_layers, attr, fn)

    print(f"torch={torch.__version__} threads={torch.get_num_threads()} genotype={args.genotype} "
          f"C={args.C} layers={args.layers} batch={args.batch} size={args.size} repeats={args.repeats}\n")
    faults = {name: [] for name in steps}

    def counted(name, fn):
        def run():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            fn()
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return run

    stats = time_steps({name: counted(name, fn) for name, fn in steps.items()}, torch.device("cpu"),
                       args.warmup, args.repeats, before=select)
    select("function")
    tune_cpu_allocator()
    base = stats["real-valued"][0]
    # Minor page faults: memory the kernel had to map (and zero) afresh during the step.
    print("| step | median ms | min ms | × real-valued | page faults / step |")
    print("|---|---:|---:|---:|---:|")
    for name, (med, low) in stats.items():
        print(f"| {name} | {med * 1e3:.1f} | {low * 1e3:.1f} | {med / base:.2f} | "
              f"{statistics.median(faults[name][args.warmup:]):.0f} |")


if __name__ == "__main__":
    main()
