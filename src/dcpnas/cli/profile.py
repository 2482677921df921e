"""Cost of a derived network: parameters, memory (MBits), FLOPs, BOPs and OPs."""

from __future__ import annotations

import argparse

NAME = "profile"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..space.network import SIZES
    from ..space.primitives import SCOPES

    p = subparsers.add_parser(
        NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0]
        + " OPs = FLOPs + BOPs/64; memory = 1 bit per binary weight + 32 bits per real parameter.")
    p.add_argument("--genotype", "-g", default="DDPNAS_MCN_2",
                   help="genotype name, file or 'Genotype(...)' string (default: DDPNAS_MCN_2)")
    p.add_argument("--size", default="L", choices=tuple(SIZES), help="network size (default: L)")
    p.add_argument("--dataset", default="imagenet",
                   help="fixes input, classes and layout: embedded, fashion-mnist, cifar10, cifar100, "
                        "imagenet, npz:<path> (default: imagenet)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--binary", dest="binary", action="store_true", default=True,
                      help="1-bit network (default)")
    kind.add_argument("--real", dest="binary", action="store_false", help="real-valued network")
    p.add_argument("--scope", default="official", choices=SCOPES,
                   help="binarisation scope of the 1-bit ops (default: official)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--per-layer", action="store_true", help="also list every conv/linear layer")
    return p


def run(args) -> int:
    from ..metrics.profile import profile_genotype

    prof = profile_genotype(args.genotype, args.size, args.dataset, binary=args.binary,
                            scope=args.scope)
    print(prof.to_json() if args.json else prof.table(per_layer=args.per_layer))
    return 0
