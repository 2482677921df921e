"""Train the network of a genotype: 1-bit two-step with distillation, or real-valued."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_data_device_options, data_device_overrides

NAME = "train"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help=__doc__.splitlines()[0],
        description=__doc__.splitlines()[0] + " Settings: a preset, then a config file (.json/.toml, "
        "e.g. a run's config.json), then --set overrides. Launch with torchrun for data parallelism.")
    p.add_argument("--genotype", "-g", help="genotype name, file or 'Genotype(...)' string "
                   "(sets model.genotype)")
    p.add_argument("--preset", help="a train preset (see --list-presets)")
    p.add_argument("--config", help="a config file (.json or .toml), on top of the preset or the defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[], nargs="+", metavar="KEY=VALUE",
                   help="override config keys, e.g. --set epochs=5 model.binary=false teacher.kind=self")
    p.add_argument("--out", "-o", help="run directory (required unless --list-presets)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint "
                   "(with its own config.json unless --preset or --config is given)")
    add_data_device_options(p)
    p.add_argument("--list-presets", action="store_true", help="list the train presets and exit")
    return p


def _overrides(args) -> list[str]:
    items = [item for group in args.overrides for item in group]
    if args.genotype:
        items.append(f"model.genotype={args.genotype}")
    return items + data_device_overrides(args)


def run(args) -> int:
    from ..config import list_presets, resolve_config
    from ..errors import ConfigError
    from ..train import TrainConfig, train
    from ..train.presets import PRESETS

    if args.list_presets:
        for name in list_presets("train"):
            doc = (PRESETS[name].__doc__ or "").strip().splitlines() if name in PRESETS else []
            print(f"{name:14s} {doc[0] if doc else ''}")
        return 0
    if args.out is None:
        raise ConfigError("--out DIR is required (the run directory)")
    from ..utils.rundir import check_run_dir

    check_run_dir(args.out, "train", resume=args.resume)   # fails before any setting is read
    config_file = args.config
    saved = Path(args.out) / "config.json"
    if args.resume and config_file is None and args.preset is None and saved.is_file():
        config_file = saved   # resuming reuses the run's own settings, as search does
    cfg = resolve_config(TrainConfig, "train", preset=args.preset, config_file=config_file,
                         overrides=_overrides(args))
    if not cfg.model.genotype:
        raise ConfigError("no genotype: pass --genotype (a name, a file or 'Genotype(...)')")
    from ..utils.distributed import cleanup

    try:
        train(cfg, args.out, resume=args.resume)  # stop_after_epochs: a resumable stop, exit 0 too
    finally:
        cleanup()
    return 0
