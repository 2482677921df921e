"""Run a seeded study of the paper's tables: every configuration × seed, search then 1-bit training."""

from __future__ import annotations

import argparse

NAME = "study"

EPILOG = """\
sets:
  table-4.2   ±D × ±L_R                                  (dcpnas, no-D, no-L_R, neither)
  table-4.3   dcpnas, cpnas, cpnas-sample, bnas, darts, random, dcpnas-exact
  table-4.4   the distance of D: fro (dcpnas), l1, cosine
  distribution  dcpnas, cpnas, darts: the genotypes found as distributions (searches only)
  FILE.json   {"entries": [{"label": "...", "method": "dcpnas", "overrides": ["k=v", ...]}, ...]}
              an entry with "genotype": G (a name or file) trains G without a search;
              "search_only": true beside "entries" makes the set run searches only
Each set also runs `null` (dcpnas with α₀ perturbed by 1e-9): the noise floor of every comparison.
The summary also reads the genotypes as distributions: per configuration the edge x op counts over
seeds, their consensus and agreement, and the distance of each configuration's genotypes to dcpnas's
with permutation-test p-values, unpaired and paired by seed (docs/METHOD.md, "Replicas and their
consensus").

examples:
  dcpnas study table-4.3 --seeds 3 --out runs/t43
  dcpnas study table-4.2 --seeds 3 --jobs 2 --out runs/t42
  dcpnas study table-4.3 --seeds 3 --out runs/t43 --resume     # after a kill: finished trials are kept
  dcpnas study distribution --seeds 6 --no-noise-floor --out runs/dist
  dcpnas study --list"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0],
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("set", nargs="?", help="a study set (see below) or a .json file")
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--search-preset", default="quick", help="search preset of every trial (quick)")
    p.add_argument("--train-preset", default="quick", help="train preset of every trial (quick)")
    p.add_argument("--search-set", dest="search_overrides", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE", help="overrides for every search")
    p.add_argument("--train-set", dest="train_overrides", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE", help="overrides for every training (the CPU protocol)")
    p.add_argument("--no-train", "--search-only", dest="no_train", action="store_true",
                   help="search only (no test accuracy; a set may declare it)")
    p.add_argument("--no-noise-floor", action="store_true", help="skip the null-perturbation runs")
    p.add_argument("--jobs", type=int, default=2, help="trials at a time, one thread each (2)")
    p.add_argument("--priority", nargs="+", default=[], metavar="LABEL",
                   help="run these entries for every seed first (e.g. dcpnas cpnas null)")
    p.add_argument("--out", metavar="DIR", help="the study's run directory")
    p.add_argument("--resume", action="store_true", help="continue the study in --out")
    p.add_argument("--list", action="store_true", help="list the study sets and exit")
    return p


def run(args) -> int:
    from ..errors import ConfigError
    from ..study import StudyConfig, run_study, study_sets

    if args.list:
        for name, caption in study_sets().items():
            print(f"{name:10s} {caption}")
        return 0
    if not args.set:
        raise ConfigError("name a study set (e.g. table-4.3) or a .json file; see --list")
    if not args.out:
        raise ConfigError("--out DIR is required (the study's run directory)")
    cfg = StudyConfig(set_name=args.set, seeds=args.seeds, first_seed=args.first_seed,
                      search_preset=args.search_preset, train_preset=args.train_preset,
                      search_overrides=list(args.search_overrides),
                      train_overrides=list(args.train_overrides),
                      noise_floor=not args.no_noise_floor, jobs=args.jobs, train=not args.no_train,
                      priority=list(args.priority))
    run_study(cfg, args.out, resume=args.resume)
    return 0
