"""Measure how much D and the decoupled backtrack act, early in a search, at each preset's size.

For each preset: build the dcpnas method at the preset's supernet size, run ``--parent-steps``
Parent steps, then ``--child-steps`` Child steps, and report the median over those Child α̂-steps
of ρ = ‖λ·H_G·∂D/∂g_C‖ / ‖g_C‖ and cos(step, −g_C), and the median backtrack / Adam-step ratio of
the decoupled optimisation (docs/METHOD.md, Decisions L and O). Data: the embedded Fashion-MNIST
subset, upsampled to the preset's image size and channels when they differ (CIFAR-10 and ImageNet
cannot be downloaded here); ρ is a ratio of gradients and scales with λ, so one λ suffices to
calibrate (ρ/λ is printed too).

    python benchmarks/calibrate_lambda.py --presets quick fashion-mnist cifar10 --set objective.lam=5e-3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from dcpnas.data import DeviceBatches, load_dataset, search_split
from dcpnas.search import resolve_search_config
from dcpnas.search.run.inputs import SearchData
from dcpnas.search.methods import MethodContext, build_method

SIZES = {"quick": (1, 14), "fashion-mnist": (1, 28), "cifar10": (3, 32)}


def data_for(preset: str, cfg, n: int) -> SearchData:
    ds = load_dataset("embedded")
    ch, side = SIZES[preset]
    x, y = ds.x_train[:n], ds.y_train[:n]
    if side != x.shape[-1]:
        x = torch.nn.functional.interpolate(x.float(), size=side, mode="bilinear",
                                            align_corners=False).round().clamp(0, 255).to(torch.uint8)
    if ch != x.shape[1]:
        x = x.expand(-1, ch, -1, -1).contiguous()
    tr, va = search_split(len(y), cfg.seed, 0.5)
    kw = dict(device=torch.device("cpu"), mean=ds.mean * ch, std=ds.std * ch, shuffle=True,
              augment=False)
    B = cfg.data.batch_size
    return SearchData(DeviceBatches(x[tr], y[tr], B, seed=cfg.seed, **kw),
                      DeviceBatches(x[va], y[va], B, seed=cfg.seed + 1, **kw), ch, 10, side,
                      len(tr), len(va))


def measure(preset: str, overrides: list[str], parent_steps: int, child_steps: int,
            batch: int) -> dict:
    cfg = resolve_search_config(preset=preset, overrides=[*overrides, "device=cpu",
                                                          f"data.batch_size={batch}"])
    torch.manual_seed(cfg.seed)
    data = data_for(preset, cfg, 2 * batch * max(parent_steps, child_steps))
    method = build_method(MethodContext(cfg, data, torch.device("cpu")))
    pairs = list(zip(data.train, data.val))
    t0 = time.perf_counter()
    for (xt, yt), (xv, yv) in pairs[:parent_steps]:
        for step in method.parent_steps:
            step(xt, yt, xv, yv)
    method.child.net.load_arch(method.parent.alphas)
    rows = []
    for (xt, yt), (xv, yv) in pairs[:child_steps]:
        out = {}
        for step in method.child_steps(held_tangent=None):
            out.update(step(xt, yt, xv, yv))
        rows.append({k: float(v) for k, v in out.items()})
    med = {k: statistics.median(r[k] for r in rows)
           for k in ("rho", "cos_step_gC", "child_backtrack_ratio", "G_share", "teacher_correct")}
    return {"preset": preset, "C": cfg.supernet.C, "layers": cfg.supernet.layers, "batch": batch,
            "lam": cfg.lam, "scale": cfg.objective.discrepancy_scale,
            "curvature": cfg.objective.curvature, **med,
            "rho_per_lam": med["rho"] / cfg.lam if cfg.lam else float("nan"),
            "rho_all": [round(r["rho"], 4) for r in rows], "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["quick", "fashion-mnist", "cifar10"])
    ap.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    ap.add_argument("--parent-steps", type=int, default=8)
    ap.add_argument("--child-steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(p, args.overrides, args.parent_steps, args.child_steps, args.batch)
            for p in args.presets]
    print("| preset | C | cells | λ | D scale | curvature | median ρ | ρ/λ | median cos(step, −g_C) "
          "| backtrack/Adam | G share |")
    print("|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['C']} | {r['layers']} | {r['lam']:g} | {r['scale']} | "
              f"{r['curvature']} | {r['rho']:.3g} | {r['rho_per_lam']:.3g} | {r['cos_step_gC']:.4f} | "
              f"{r['child_backtrack_ratio']:.3g} | {r['G_share']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
