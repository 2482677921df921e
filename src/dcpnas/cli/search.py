"""Search a 1-bit cell architecture with DCP-NAS or a baseline (darts, bnas, cpnas, cpnas-sample, random)."""

from __future__ import annotations

import argparse

from .options import add_data_device_options, data_device_overrides

NAME = "search"

EPILOG = """\
examples:
  dcpnas search --preset quick --out runs/q
  dcpnas search --preset fashion-mnist --method darts --set schedule.rounds=5 --out runs/fm-darts
  dcpnas search --out runs/q --resume
  torchrun --nproc_per_node=4 -m dcpnas search --preset cifar10 --out runs/c10
  dcpnas search --preset quick --replicas 6 --jobs 2 --out runs/q6   # consensus of 6 seeds

--replicas K runs K searches of one configuration (by seed, or by a 1e-9 perturbation of the
initial alpha with --replica-mode perturb) as resumable subprocesses, keeps each in
DIR/replicas/rI, and writes their consensus to DIR/genotype.json with DIR/agreement.json and
DIR/agreement_{normal,reduce}.png (docs/METHOD.md, "Replicas and their consensus"). For random the
consensus is a vote over each replica's best random cell; for cpnas-sample a vote over the ops each
sample-and-prune kept. Rerunning the same command continues where it stopped; a larger K adds
replicas to the set, a smaller one is refused.

D acts through objective.lam = 0.03 on D/‖g_P‖² (ρ = ‖λ·H_G·∂D/∂g_C‖/‖g_C‖, logged:
about 0.26 at quick, 0.4-1.0 at fashion-mnist, docs/RESULTS.md);
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
    add_data_device_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    rep = p.add_argument_group("replicas")
    rep.add_argument("--replicas", type=int, metavar="K",
                     help="run K searches and write their consensus genotype (2..100)")
    rep.add_argument("--jobs", type=int, metavar="J", help="replicas at a time (default 1)")
    rep.add_argument("--replica-mode", choices=("seed", "perturb"),
                     help="what differs between replicas: the seed (default) or alpha_0 by 1e-9")
    return p


def run(args) -> int:
    from ..search.run.api import search
    from ..utils.rundir import check_run_dir, run_kind

    if args.replicas is not None or (args.resume and run_kind(args.out) == "replicas"):
        return _replicas(args)
    if args.jobs is not None or args.replica_mode is not None:
        from ..errors import ConfigError
        raise ConfigError("--jobs and --replica-mode go with --replicas K")
    # Before the config is even resolved: resuming reads --out/config.json, which must be a search's.
    check_run_dir(args.out, "search", resume=args.resume)
    overrides = _overrides(args)
    preset = args.preset
    if preset is None and args.config is None and not args.resume:
        preset = "quick"
    result = search(args.config, preset=preset, method=args.method, overrides=overrides, out=args.out,
                    resume=args.resume, quiet=args.quiet)
    return 0 if result is not None else 1


def _overrides(args) -> list[str]:
    return list(args.overrides) + data_device_overrides(args)


def _replicas(args) -> int:
    """K searches and their consensus (dcpnas.search.replicas); rerunning continues them."""
    from pathlib import Path

    from ..search.run.api import resolve_search_config
    from ..search.replicas import load_saved, run_replicas
    from ..utils.rundir import run_kind

    overrides = _overrides(args)
    bare = args.preset is None and args.config is None and args.method is None and not overrides
    cfg, saved = None, None
    if (args.resume and bare) or (run_kind(args.out) == "replicas"
                                  and (Path(args.out) / "replicas.json").is_file()):
        cfg, saved = load_saved(args.out)   # what to continue with, or one line saying why not
    if not (args.resume and bare):
        preset = args.preset if args.preset or args.config else "quick"
        cfg = resolve_search_config(args.config, preset=preset, method=args.method, overrides=overrides)
    k = args.replicas if args.replicas is not None else (saved or {}).get("replicas", 0)
    mode = args.replica_mode or (saved["mode"] if saved else "seed")
    run_replicas(cfg, args.out, replicas=k, mode=mode, jobs=1 if args.jobs is None else args.jobs,
                 resume=args.resume, quiet=args.quiet)
    return 0
