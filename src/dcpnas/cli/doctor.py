"""Print the lines a bug report needs: versions, oneDNN and CPU capability, threads, devices, settings."""

from __future__ import annotations

import argparse
import json

NAME = "doctor"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print JSON instead of aligned lines")
    return p


def run(args) -> int:
    from ..utils.environment import environment_report

    rows = environment_report()
    if args.json:
        print(json.dumps(dict(rows), indent=2))
    else:
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    return 0
