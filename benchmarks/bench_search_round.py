"""Cost of one search round per method and curvature mode: Parent pair, Child pair, full round.

A *pair* is the weight step and the architecture step of one supernet on one (search-train,
search-val) batch pair; a *round* of DCP-NAS/CP-NAS is the Parent pair then the Child pair (what
Algorithm 10 does per batch, alternating per epoch); DARTS's round is its Parent pair alone. Every
variant is built from the same seed (same supernets, same batches) through ``build_method``, so
what is timed is exactly what ``dcpnas search`` runs. Steps are interleaved round-robin over the
repeats, so machine load hits all variants alike: read the ratios, not the milliseconds.

Memory format: the search's default is channels-last on every device (``use_channels_last``);
``--memory-format both`` times every variant also in NCHW, interleaved with the rest.

Kernels: ``--kernels both`` times every variant also with ``dcpnas.kernels``' CPU fast paths off
(torch's own BatchNorm and dilated depthwise conv backward), interleaved with the rest.

Peak memory: per variant in a fresh subprocess (``--memory``): on CPU the process's peak resident
set after building the supernets and running one round (VmHWM, so it includes Python and
torch, about the same for every variant: compare differences), on CUDA ``max_memory_allocated``.

    python benchmarks/bench_search_round.py --C 8 --layers 5 --batch 32 --size 32 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dcpnas.kernels import native_kernels  # noqa: E402
from dcpnas.search import resolve_search_config  # noqa: E402
from dcpnas.search.run.inputs import SearchData  # noqa: E402
from dcpnas.search.methods import MethodContext, build_method  # noqa: E402
from dcpnas.data import DeviceBatches  # noqa: E402
from dcpnas.utils.distributed import use_channels_last  # noqa: E402
from dcpnas.utils.modules import forget_modules_of_type  # noqa: E402

# Every variant starts from the quick preset, whose GGN is the library default: forward-mode J·v
# on a curvature sub-batch of 1/4 of the α̂-batch (Decision C). The whole-batch rows name their mode.
VARIANTS = {
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


def build(name: str, args, device, edit_child=None):
    """(pairs, batch) of variant ``name``; ``edit_child`` (benchmarks' layout ablations) edits the
    Child supernet in place after it is built."""
    nchw = name.removesuffix(NATIVE).endswith(NCHW)
    method, extra = VARIANTS[base_name(name)]
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


def memory_of(name: str, args, device) -> float:
    """Peak memory (MiB) of one round of ``name``: CUDA allocator peak, or CPU RSS growth."""
    pairs, batch = build(name, args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with kernels_for(name):
        for steps in pairs.values():
            run_pair(steps, batch)
    if device.type == "cuda":
        sync(device)
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return _peak_rss_mib()


def _peak_rss_mib() -> float:
    """This process's peak resident set. Linux: VmHWM, which starts afresh at exec; ``ru_maxrss``
    would carry over the peak of the parent that forked it (the timing process, all variants built)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_size_arguments(ap: argparse.ArgumentParser) -> None:
    """The supernet and batch every variant is built with (``build``), and the thread count;
    defaults: issue 9's size, C 8, 5 cells, batch 32, 32×32×3, one thread."""
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(ap)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--memory-format", choices=("channels_last", "contiguous", "both"),
                    default="channels_last", help="both: every variant also in NCHW, interleaved")
    ap.add_argument("--kernels", choices=("fast", "native", "both"), default="fast",
                    help="dcpnas.kernels' CPU fast paths on (fast), off (native) or both, interleaved")
    ap.add_argument("--memory", help=argparse.SUPPRESS)  # internal: one variant's peak memory
    args = ap.parse_args()
    from dcpnas.utils.allocator import tune_cpu_allocator
    tune_cpu_allocator()                     # as the dcpnas command runs (utils/allocator.py)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.memory:
        print(json.dumps(memory_of(args.memory, args, device)))
        return
    if args.memory_format == "contiguous":
        args.variants = [v + NCHW for v in args.variants]
    elif args.memory_format == "both":
        args.variants = [v + s for v in args.variants for s in ("", NCHW)]
    if args.kernels == "native":
        args.variants = [v + NATIVE for v in args.variants]
    elif args.kernels == "both":
        args.variants = [v + s for v in args.variants for s in ("", NATIVE)]

    mem = {}
    for name in args.variants:
        cmd = [sys.executable, __file__, "--memory", name, "--kernels", args.kernels, "--C", str(args.C), "--layers",
               str(args.layers), "--batch", str(args.batch), "--size", str(args.size),
               "--channels", str(args.channels), "--threads", str(args.threads), "--device",
               args.device, *(["--set", *args.overrides] if args.overrides else [])]
        out = subprocess.run(cmd, capture_output=True, text=True)
        mem[name] = float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else float("nan")
    built = {name: build(name, args, device) for name in args.variants}
    samples = {(name, part): [] for name, (pairs, _) in built.items() for part in pairs}
    for rep in range(args.repeats + 1):               # the first pass warms up
        for name, (pairs, batch) in built.items():
            for part, steps in pairs.items():
                sync(device)
                t0 = time.perf_counter()
                with kernels_for(name):
                    run_pair(steps, batch)
                sync(device)
                if rep:
                    samples[(name, part)].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    rounds = {name: sum(med[(name, p)] for p in pairs) for name, (pairs, _) in built.items()}
    print(f"device={device} torch={torch.__version__} threads={args.threads} C={args.C} "
          f"layers={args.layers} batch={args.batch} input={args.channels}×{args.size}² "
          f"repeats={args.repeats} (medians)\n")
    print("| variant | Parent pair ms | Child pair ms | Child ÷ Parent | round ms | × CP-NAS round "
          "| × DARTS round | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (pairs, _) in built.items():
        fmt = suffix(name)                            # ratios against the same format and kernels
        ref, darts = rounds.get("cpnas" + fmt), rounds.get("darts" + fmt)
        p = med[(name, "parent pair")]
        c = med.get((name, "child pair"))
        ratio = lambda base: "" if not base else f"{rounds[name] / base:.2f}"  # noqa: E731
        print(f"| {name} | {p * 1e3:.0f} | {'' if c is None else f'{c * 1e3:.0f}'} | "
              f"{'' if c is None else f'{c / p:.2f}'} | {rounds[name] * 1e3:.0f} | "
              f"{ratio(ref)} | {ratio(darts)} | {mem[name]:.0f} |")
    if args.kernels == "both":
        print("\n| variant | native kernels ÷ fast paths: Parent pair | Child pair | round |\n|---|---:|---:|---:|")
        for name, (pairs, _) in built.items():
            if name.endswith(NATIVE) or name + NATIVE not in rounds:
                continue
            cells = [f"{med[(name + NATIVE, p)] / med[(name, p)]:.2f}" if (name, p) in med else ""
                     for p in ("parent pair", "child pair")]
            print(f"| {name} | {cells[0]} | {cells[1]} | {rounds[name + NATIVE] / rounds[name]:.2f} |")
    if args.memory_format == "both":
        print("\n| variant | round NCHW ÷ channels-last |\n|---|---:|")
        for name in args.variants:
            if not name.endswith(NCHW) and name + NCHW in rounds:
                print(f"| {name} | {rounds[name + NCHW] / rounds[name]:.2f} |")


if __name__ == "__main__":
    main()
