"""What the benchmark scripts share: round-robin timing, the supernets and search rounds they time,
one supernet edge's passes, and the command-line arguments for sizes and threads.

Every script imports the installed ``dcpnas`` (``pip install -e .``, as ``make`` does) and this
module, which Python finds beside the script it runs; no script imports another.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from dcpnas.data import DeviceBatches
from dcpnas.kernels import native_kernels
from dcpnas.search import resolve_search_config
from dcpnas.search.run.inputs import SearchData
from dcpnas.search.methods import MethodContext, build_method
from dcpnas.space import Supernet
from dcpnas.utils.allocator import tune_cpu_allocator
from dcpnas.utils.distributed import use_channels_last
from dcpnas.utils.modules import forget_modules_of_type


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(steps, device, warmup, repeats, before=None):
    """Median and min seconds per step. The steps are interleaved round-robin over the repeats,
    so load changes on a shared machine hit every step alike (the ratios are what matter)."""
    samples = {name: [] for name in steps}
    for _ in range(warmup):
        for name, fn in steps.items():
            before and before(name)
            fn()
    sync(device)
    for _ in range(repeats):
        for name, fn in steps.items():
            before and before(name)
            t0 = time.perf_counter()
            fn()
            sync(device)
            samples[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), min(t)) for name, t in samples.items()}


def build_supernets(C, layers, classes, device, dtype, seed=0):
    torch.manual_seed(seed)
    parent = Supernet("parent", in_channels=3, num_classes=classes, C=C, layers=layers)
    child = Supernet("child", in_channels=3, num_classes=classes, C=C, layers=layers)
    return parent.to(device, dtype), child.to(device, dtype)


def edge_arguments(doc: str, repeats: int) -> argparse.ArgumentParser:
    """The one-edge benchmarks' command line: edge size, repeats and threads."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--stride", type=int, default=1, choices=(1, 2))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--threads", type=int, default=1)
    return ap


def set_up(threads: int) -> None:
    """Threads, and glibc malloc tuned as the ``dcpnas`` command runs (``dcpnas.utils.allocator``):
    with glibc's defaults the fresh buffers of every pass page-fault, which is not what a search costs."""
    tune_cpu_allocator()
    torch.set_num_threads(threads)


# One edge (``MixedOp``) timed as the weight step uses it (``full``) and as the α-step does.
PASSES = ("full", "alpha")


def run_pass(op, x, w, kind: str) -> None:
    y = op(x, w)
    if kind == "full":
        y.backward(torch.ones_like(y))
    else:
        torch.autograd.grad(y.sum(), [w])


# Every variant starts from the quick preset, whose GGN is the library default: forward-mode J·v
# on a curvature sub-batch of 1/4 of the α̂-batch (Decision C). The whole-batch rows name their mode.
ROUND_VARIANTS = {
    "darts": ("darts", []),
    "cpnas": ("cpnas", []),
    "dcpnas ggn": ("dcpnas", ["objective.curvature=ggn"]),
    "dcpnas ggn f=1/8": ("dcpnas", ["objective.curvature=ggn", "objective.curvature_fraction=0.125"]),
    "dcpnas ggn whole batch, forward-mode": ("dcpnas", ["objective.curvature=ggn",
                                                        "objective.curvature_fraction=1"]),
    "dcpnas ggn whole batch, reverse-mode": ("dcpnas", ["objective.curvature=ggn",
                                                        "objective.ggn_jvp=reverse"]),
    # Algorithm 10's literal tangent: the last Parent epoch's mean g_P, no Parent backward per α̂-step
    "dcpnas ggn epoch-mean tangent": ("dcpnas", ["objective.curvature=ggn", "objective.tangent=epoch_mean"]),
    "dcpnas ggn whole batch, reverse-mode, epoch-mean tangent": ("dcpnas", [
        "objective.curvature=ggn", "objective.ggn_jvp=reverse", "objective.tangent=epoch_mean"]),
    "dcpnas fisher K=1": ("dcpnas", ["objective.curvature=fisher"]),
    "dcpnas exact": ("dcpnas", ["objective.curvature=exact"]),
    "darts PC K=4": ("darts", ["supernet.partial_channels=4"]),
    "cpnas PC K=4": ("cpnas", ["supernet.partial_channels=4"]),
    "dcpnas ggn PC K=4": ("dcpnas", ["objective.curvature=ggn", "supernet.partial_channels=4"]),
}


NCHW = " (NCHW)"  # suffix of a variant run in the contiguous memory format instead of channels-last
NATIVE = " (native kernels)"  # suffix of a variant run with dcpnas.kernels' CPU fast paths off


def base_name(name: str) -> str:
    return name.removesuffix(NATIVE).removesuffix(NCHW)


def suffix(name: str) -> str:
    return name[len(base_name(name)):]


def kernels_for(name: str):
    return native_kernels() if name.endswith(NATIVE) else contextlib.nullcontext()


def build_round(name: str, args, device, edit_child=None):
    """(pairs, batch) of variant ``name``; ``edit_child`` (benchmarks' layout ablations) edits the
    Child supernet in place after it is built."""
    nchw = name.removesuffix(NATIVE).endswith(NCHW)
    method, extra = ROUND_VARIANTS[base_name(name)]
    cfg = resolve_search_config(preset="quick", method=method, overrides=[
        f"supernet.C={args.C}", f"supernet.layers={args.layers}", f"data.batch_size={args.batch}",
        f"device={device.type}", f"channels_last={str(not nchw).lower()}", *args.overrides, *extra])
    channels_last = use_channels_last(device, cfg.channels_last)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n = args.batch * 2
    x = torch.randint(0, 256, (n, args.channels, args.size, args.size), generator=g,
                      dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    kw = dict(device=device, mean=(0.5,) * args.channels, std=(0.25,) * args.channels,
              shuffle=False, augment=False, channels_last=channels_last)
    data = SearchData(DeviceBatches(x, y, args.batch, seed=0, **kw),
                      DeviceBatches(x.flip(0), y.flip(0), args.batch, seed=1, **kw),
                      args.channels, 10, args.size, n, n)
    m = build_method(MethodContext(cfg, data, device))
    if edit_child is not None:
        edit_child(m.child.net)
        forget_modules_of_type(m.child.net)
    (xt, yt), (xv, yv) = next(iter(data.train)), next(iter(data.val))
    if getattr(m, "tangent", None) is not None:  # tangent=epoch_mean: one Parent pair fills it
        run_pair(m.parent_steps, (xt, yt, xv, yv))
        m.fixed_tangent = m.tangent.mean()
    if hasattr(m, "parent_steps"):
        pairs = {"parent pair": m.parent_steps, "child pair": m.child_steps(m.fixed_tangent)}
    else:
        pairs = {"parent pair": m.steps}
    return pairs, (xt, yt, xv, yv)


def run_pair(steps, batch):
    for s in steps:
        s(*batch)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def add_size_arguments(ap: argparse.ArgumentParser) -> None:
    """The supernet and batch every variant is built with (``build_round``), and the thread count;
    defaults: C 8, 5 cells, batch 32, 32×32×3, one thread (the headline round)."""
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
