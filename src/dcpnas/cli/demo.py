"""Run the whole pipeline on the embedded data: search, train (1-bit and real), evaluate, export."""

from __future__ import annotations

import time


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help=__doc__.splitlines()[0],
                              description="The quick search on the embedded Fashion-MNIST subset, then "
                                          "training of the found 1-bit network and of a real-valued "
                                          "reference, evaluation, profile and packed export, ending with "
                                          "a summary table.")
    p.add_argument("--out", default=None, help="run directory (default runs/demo-<time>)")
    p.add_argument("--method", default="dcpnas",
                   help="search method: dcpnas, cpnas, cpnas-sample, bnas, darts, random")
    p.add_argument("--preset", default=None,
                   help="search and train preset of the same name: quick (default) or fashion-mnist "
                        "(real Fashion-MNIST: about 75 min on 2 CPU cores for the search, both trainings "
                        "and the export; docs/RESULTS.md)")
    p.add_argument("--search-preset", default=None, help="search preset (overrides --preset)")
    p.add_argument("--train-preset", default=None, help="train preset (overrides --preset)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


def run(args) -> int:
    from ..demo import run_demo

    out = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    base = args.preset or "quick"
    run_demo(out, search_preset=args.search_preset or base, train_preset=args.train_preset or base,
             method=args.method, device=args.device)
    return 0
