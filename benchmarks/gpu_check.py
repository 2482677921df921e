"""The prepared GPU check: what a search costs on CUDA, and that search and training run there end to end.

At the ``cifar10`` preset's supernet size (C 16, 8 cells, batch 64, 32×32×3) it times the Parent
pair, the Child pair and the round of ``darts``, ``cpnas`` and ``dcpnas`` (``ggn``, ``exact``), each
with bf16 autocast on and off and in channels-last and NCHW, with the peak memory of each
(``torch.cuda.max_memory_allocated``); then it runs a 2-step search and a 1-epoch training through
the CLI, alone and under ``torchrun --nproc_per_node=1``. It prints one markdown table. A pair is a
supernet's weight step and architecture step on one (search-train, search-val) batch pair; a
round of dcpnas/cpnas is the Parent pair then the Child pair (darts: its pair alone). Timers wait
for the device (``torch.cuda.synchronize``) on both sides; each figure is the median of
``--repeats`` after one warm-up round (``--tiny``: one round, no warm-up).

    python benchmarks/gpu_check.py                     # on a GPU: about 2-5 minutes
    python benchmarks/gpu_check.py --device cpu --tiny # seconds: the test suite runs this

It imports the installed ``dcpnas`` (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dcpnas.data import DeviceBatches
from dcpnas.search import resolve_search_config
from dcpnas.search.methods import MethodContext, build_method
from dcpnas.search.run.inputs import SearchData
from dcpnas.utils.distributed import use_channels_last

#: row label -> (method, config overrides)
VARIANTS = {
    "darts": ("darts", []),
    "cpnas": ("cpnas", []),
    "dcpnas ggn": ("dcpnas", ["objective.curvature=ggn"]),
    "dcpnas exact": ("dcpnas", ["objective.curvature=exact"]),
}
#: label -> (bf16 autocast, channels-last)
MODES = {"fp32 NCHW": (False, False), "bf16 NCHW": (True, False), "fp32 NHWC": (False, True),
         "bf16 NHWC": (True, True)}


def sizes(tiny: bool) -> dict:
    if tiny:
        return dict(C=2, layers=3, batch=4, size=8)
    cfg = resolve_search_config(preset="cifar10")
    return dict(C=cfg.supernet.C, layers=cfg.supernet.layers, batch=cfg.data.batch_size, size=32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(variant: str, amp: bool, channels_last: bool, s: dict, device: torch.device):
    """(method, pairs, batch): the variant built as ``dcpnas search`` builds it, on synthetic data."""
    method, extra = VARIANTS[variant]
    cfg = resolve_search_config(preset="cifar10", method=method, overrides=[
        f"supernet.C={s['C']}", f"supernet.layers={s['layers']}", f"data.batch_size={s['batch']}",
        f"device={device.type}", f"amp={str(amp).lower()}",
        f"channels_last={str(channels_last).lower()}", *extra])
    g = torch.Generator().manual_seed(1)
    n = s["batch"] * 2
    x = torch.randint(0, 256, (n, 3, s["size"], s["size"]), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    kw = dict(device=device, mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=False, augment=False,
              channels_last=use_channels_last(device, cfg.channels_last))
    data = SearchData(DeviceBatches(x, y, s["batch"], seed=0, **kw),
                      DeviceBatches(x.flip(0), y.flip(0), s["batch"], seed=1, **kw), 3, 10, s["size"], n, n)
    torch.manual_seed(0)
    m = build_method(MethodContext(cfg, data, device))
    if hasattr(m, "parent_steps"):
        pairs = {"Parent pair": m.parent_steps, "Child pair": m.child_steps(m.fixed_tangent)}
    else:
        pairs = {"Parent pair": m.steps}
    batch = (*next(iter(data.train)), *next(iter(data.val)))
    return m, pairs, batch


def time_variant(variant: str, mode: str, s: dict, device: torch.device, repeats: int,
                 warmup: int = 1) -> list[dict]:
    amp, channels_last = MODES[mode]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _, pairs, batch = build(variant, amp, channels_last, s, device)
    times = {name: [] for name in pairs}
    times["round"] = []
    for r in range(warmup + repeats):         # warm-up rounds first (kernels, allocator)
        total = 0.0
        for name, steps in pairs.items():
            sync(device)
            t0 = time.perf_counter()
            for step in steps:
                step(*batch)
            sync(device)
            dt = time.perf_counter() - t0
            total += dt
            if r >= warmup:
                times[name].append(dt)
        if r >= warmup:
            times["round"].append(total)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return [{"part": name, "variant": variant, "mode": mode,
             "ms": 1e3 * statistics.median(ts), "peak_mib": peak} for name, ts in times.items()]


def run_cli(args: list[str], torchrun: bool, timeout: float) -> tuple[str, float]:
    """Run ``dcpnas ARGS`` (under ``torchrun --nproc_per_node=1`` when asked); (status, seconds)."""
    cmd = [sys.executable, "-m", "dcpnas", *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               "-m", "dcpnas", *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timed out", time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: " + (
        proc.stderr.strip().splitlines() or ["?"])[-1][:120]
    return status, time.perf_counter() - t0


def end_to_end(device: torch.device, tiny: bool, work: Path, timeout: float) -> list[dict]:
    """A 2-step search and a 1-epoch training through the CLI, alone and under torchrun."""
    rows = []
    for torchrun in (False, True):
        tag = "torchrun 1 proc" if torchrun else "one process"
        out = work / ("torchrun" if torchrun else "plain")
        search = ["search", "--preset", "quick", "--quiet", "--device", str(device), "--out", str(out / "search"),
                  "--set", "schedule.rounds=1", "schedule.steps_per_epoch=1", "data.eval_batches=1",
                  *(["supernet.C=2", "data.limit=32", "data.batch_size=8"] if tiny else [])]
        status, secs = run_cli(search, torchrun, timeout)
        rows.append({"part": "search, 2 steps (CLI)", "variant": "dcpnas quick", "mode": tag,
                     "ms": 1e3 * secs, "peak_mib": None, "status": status})
        genotype = out / "search" / "genotype.json"
        train = ["train", "--preset", "quick", "--genotype", str(genotype if genotype.exists() else "DARTS_V2"),
                 "--device", str(device), "--out", str(out / "train"), "--set", "epochs=1", "two_step=false",
                 *(["data.train_limit=64", "data.test_limit=64", "model.C=2"] if tiny else [])]
        status, secs = run_cli(train, torchrun, timeout)
        rows.append({"part": "training, 1 epoch (CLI)", "variant": "quick", "mode": tag,
                     "ms": 1e3 * secs, "peak_mib": None, "status": status})
    return rows


def table(rows: list[dict], device: torch.device, s: dict) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"GPU check on {name} (torch {torch.__version__}); supernet C {s['C']}, {s['layers']} cells, "
             f"batch {s['batch']}, {s['size']}×{s['size']}×3", "",
             "| part | variant | mode | ms (median) | peak MiB | status |", "|---|---|---|---:|---:|---|"]
    for r in rows:
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| {r['part']} | {r['variant']} | {r['mode']} | {r['ms']:.1f} | {peak} | "
                     f"{r.get('status', 'ok')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes and one mode (the test suite's run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per CLI run")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA device here; --device cpu --tiny runs the check on the CPU")
    if device.type == "cpu":
        torch.set_num_threads(1)
    else:
        torch.backends.cudnn.benchmark = True   # fixed shapes: as a search sets it
    s = sizes(args.tiny)
    modes = ["fp32 NHWC"] if args.tiny else list(MODES)
    repeats = 1 if args.tiny else args.repeats
    rows = []
    for variant in VARIANTS:
        for mode in modes:
            try:
                rows += time_variant(variant, mode, s, device, repeats, warmup=0 if args.tiny else 1)
            except Exception as exc:  # one failing variant must not hide the others' figures
                rows.append({"part": "round", "variant": variant, "mode": mode, "ms": float("nan"),
                             "peak_mib": None, "status": f"{type(exc).__name__}: {exc}"[:120]})
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        env_out = os.environ.get("GPU_CHECK_KEEP")
        rows += end_to_end(device, args.tiny, Path(env_out or work), args.timeout)
    print(table(rows, device, s))
    return 0 if all(r.get("status", "ok") == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
