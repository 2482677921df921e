"""Genotype tools: list the named ones, show, convert between formats, draw cells."""

from __future__ import annotations

import argparse
import sys

NAME = "genotype"
FORMATS = ("json", "darts", "nested")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0]
                              + " G is a name (see 'list'), a file (JSON or Genotype(...) text) "
                                "or a 'Genotype(...)' string.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    sub.add_parser("list", help="named genotypes")

    show = sub.add_parser("show", help="print a genotype")
    show.add_argument("genotype", metavar="G")
    show.add_argument("--format", "-f", default="json", choices=FORMATS)

    conv = sub.add_parser("convert", help="rewrite a genotype in another format")
    conv.add_argument("genotype", metavar="IN")
    conv.add_argument("--to", required=True, choices=FORMATS)
    conv.add_argument("--out", "-o", help="output file (default: standard output)")

    draw = sub.add_parser("draw", help="draw the cells (graphviz dot if on PATH, else matplotlib)")
    draw.add_argument("genotype", metavar="G")
    draw.add_argument("--out", "-o", required=True, help="FILE.svg, FILE.png or FILE.dot")
    draw.add_argument("--cell", choices=("normal", "reduce", "both"), default="both")
    draw.add_argument("--engine", choices=("auto", "dot", "python"), default="auto",
                      help="auto: graphviz when 'dot' is on PATH (default)")
    return p


def render(genotype, fmt: str) -> str:
    """The text of ``genotype`` in ``fmt`` (json, darts or nested), newline-terminated."""
    text = {"json": genotype.to_json, "darts": genotype.to_darts, "nested": genotype.to_nested}[fmt]()
    return text + "\n"


def _list() -> int:
    from ..space.named import NAMED_GENOTYPES

    first: dict[int, str] = {}
    for name, g in NAMED_GENOTYPES.items():
        alias = first.setdefault(id(g), name)
        print(name if alias == name else f"{name} (= {alias})")
    return 0


def run(args) -> int:
    from ..space.genotype import load_genotype
    from ..utils.io import atomic_write_text

    if args.action == "list":
        return _list()
    if getattr(args, "out", None) is not None:
        from ..utils.io import check_distinct_files, check_output_file

        check_output_file(args.out)   # before the genotype is read: one line, nothing written
        check_distinct_files({"--out": args.out}, {"the genotype file": args.genotype})
    genotype = load_genotype(args.genotype)
    if args.action == "show":
        sys.stdout.write(render(genotype, args.format))
    elif args.action == "convert":
        text = render(genotype, args.to)
        if args.out:
            atomic_write_text(args.out, text)
        else:
            sys.stdout.write(text)
    elif args.action == "draw":
        from ..space.draw import draw_genotype

        cells = ("normal", "reduce") if args.cell == "both" else (args.cell,)
        path = draw_genotype(genotype, args.out, cells=cells, engine=args.engine)
        print(path)
    return 0
