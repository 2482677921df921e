"""Options that ``search`` and ``train`` share: where the data is and which device runs, both as
config overrides so that a run's config.json records them."""

from __future__ import annotations

import argparse


def add_data_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="D",
                   help="dataset folder (sets data.data_dir; downloads, the ImageNet root)")
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N (sets device)")


def data_device_overrides(args: argparse.Namespace) -> list[str]:
    """``--data-dir`` and ``--device`` as ``key=value`` overrides, after the user's own ``--set``."""
    items = []
    if args.data_dir:
        items.append(f"data.data_dir={args.data_dir}")
    if args.device:
        items.append(f"device={args.device}")
    return items
