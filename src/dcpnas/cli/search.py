"""Search a 1-bit cell architecture with DCP-NAS or a baseline (darts, bnas, cpnas, cpnas-sample, random)."""

from __future__ import annotations

import argparse

NAME = "search"

EPILOG = """\
examples:
  dcpnas search --preset quick --out runs/q
  dcpnas search --preset fashion-mnist --method darts --set schedule.rounds=5 --out runs/fm-darts
  dcpnas search --out runs/q --resume
  torchrun --nproc_per_node=4 -m dcpnas search --preset cifar10 --out runs/c10

D acts through objective.lam = 0.03 on D/‖g_P‖² (ρ = ‖λ·H_G·∂D/∂g_C‖/‖g_C‖ ≈ 0.1-0.2, logged);
the book's λ = 5e-3 on the raw D is --set objective.discrepancy_scale=none objective.lam=5e-3,
which at these sizes gives ρ ≈ 1e-4 (D then has no effect). See docs/METHOD.md, Decision L.

Without --preset or --config the 'quick' preset is used. Settings: see dcpnas.search.config
(sections data, supernet, schedule, optim, objective, decoupled, ablation, sample, random)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0],
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", metavar="NAME",
                        help="quick (CPU, ~1-2 min), fashion-mnist, cifar10, imagenet")
    source.add_argument("--config", metavar="FILE", help="a .json/.toml config (a run's config.json works)")
    p.add_argument("--method", metavar="M",
                   help="dcpnas (default), cpnas, cpnas-sample, bnas, darts, random")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override settings, e.g. --set objective.lam=1e-3 objective.distance=l1 (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (logs, checkpoints, results)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--data-dir", metavar="D", help="dataset folder (downloads, ImageNet root)")
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    return p


def run(args) -> int:
    from ..search.run.api import search
    from ..utils.rundir import check_run_dir

    # Before the config is even resolved: resuming reads --out/config.json, which must be a search's.
    check_run_dir(args.out, "search", resume=args.resume)
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.device:
        overrides.append(f"device={args.device}")
    preset = args.preset
    if preset is None and args.config is None and not args.resume:
        preset = "quick"
    result = search(args.config, preset=preset, method=args.method, overrides=overrides, out=args.out,
                    resume=args.resume, quiet=args.quiet)
    return 0 if result is not None else 1
