"""Every ``dcpnas …`` line in the ```bash blocks of the documents (README, docs/, benchmarks/README.md)
parses with the real CLI, and its settings resolve to a valid config: a wrong option, a mistyped key
or a bad value in an example fails here. Every ``python PATH.py`` they show names a file that exists.

Nothing runs: each line goes through the subcommand's argparse parser (the one ``dcpnas`` builds),
and for ``search`` / ``train`` its preset and ``--set`` overrides are resolved and validated exactly
as the subcommand would before starting (files the example would create are not needed).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from dcpnas.cli.main import build_parser
from dcpnas.errors import DcpnasError

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md",
             ROOT / "examples" / "genotypes" / "README.md"]


def readme_commands(text: str) -> list[tuple[int, list[str]]]:
    """(line number, argv after ``dcpnas``) for each dcpnas command in the ```bash blocks of ``text``.

    A command is a line whose first word is ``dcpnas`` (after an optional ``time``) or that runs
    ``-m dcpnas`` (torchrun, python); trailing ``# comments`` are dropped.
    """
    found, in_bash = [], False
    for number, line in enumerate(text.splitlines(), 1):
        fence = line.strip()
        if fence.startswith("```"):
            in_bash = not in_bash and fence[3:].strip() == "bash"
            continue
        if not in_bash:
            continue
        words = shlex.split(line, comments=True)
        if words[:1] == ["time"]:
            words = words[1:]
        if words[:1] == ["dcpnas"]:
            found.append((number, words[1:]))
        elif "-m" in words and words[words.index("-m") + 1:][:1] == ["dcpnas"]:
            found.append((number, words[words.index("-m") + 2:]))
    return found


def check_command(argv: list[str]) -> None:
    """Parse ``argv`` as ``dcpnas`` would and resolve the config it names; raises on any error
    (argparse's SystemExit, a DcpnasError for a bad key or value)."""
    parser, _ = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return
        raise
    if args.command == "search" and not (args.resume and args.preset is None):
        from dcpnas.search.run.api import resolve_search_config

        resolve_search_config(args.config, preset=args.preset or "quick", method=args.method,
                              overrides=args.overrides)
    elif args.command == "train" and not args.list_presets:
        from dcpnas.config import resolve_config
        from dcpnas.train import TrainConfig

        # model.genotype is left out: the README's genotype files are made by the search example.
        overrides = [item for group in args.overrides for item in group]
        resolve_config(TrainConfig, "train", preset=args.preset, config_file=args.config,
                       overrides=overrides)


def script_paths(text: str) -> list[str]:
    """The ``python PATH.py`` scripts named in the ```bash blocks of ``text``."""
    found, in_bash = [], False
    for line in text.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            in_bash = not in_bash and fence[3:].strip() == "bash"
            continue
        words = shlex.split(line, comments=True) if in_bash else []
        if words[:1] == ["python"] and words[1:2] and words[1].endswith(".py"):
            found.append(words[1])
    return found


COMMANDS = [(doc.relative_to(ROOT).as_posix(), n, argv) for doc in DOCUMENTS
            for n, argv in readme_commands(doc.read_text(encoding="utf-8"))]


def test_the_documents_have_commands():
    subcommands = {argv[0] for _, _, argv in COMMANDS}
    assert {"search", "train", "eval", "export", "profile", "genotype", "study", "demo"} <= subcommands
    assert {doc for doc, _, _ in COMMANDS} >= {"README.md", "docs/RESULTS.md"}


@pytest.mark.parametrize("argv", [argv for _, _, argv in COMMANDS],
                         ids=[f"{doc}:L{n}:{' '.join(argv)[:70]}" for doc, n, argv in COMMANDS])
def test_documented_command_parses(argv):
    check_command(argv)


def test_documented_scripts_exist():
    scripts = {path for doc in DOCUMENTS for path in script_paths(doc.read_text(encoding="utf-8"))}
    assert "benchmarks/bench_search_round.py" in scripts
    missing = sorted(path for path in scripts if not (ROOT / path).is_file())
    assert not missing, missing


@pytest.mark.parametrize("broken", [
    "dcpnas search --preset quick --set objective.curvature=exact --out runs/q --no-such-flag",
    "dcpnas search --preset quick --set objective.lamda=1e-3 --out runs/q",       # mistyped key
    "dcpnas search --preset quick --set objective.curvature=hessian --out runs/q",  # bad choice
    "dcpnas train --genotype DDPNAS_MCN_2 --preset quick --set epoch=2 --out runs/t",
    "dcpnas genotype show DDPNAS_MCN_2 --format yaml",
])
def test_a_broken_example_fails(broken):
    (_, argv), = readme_commands(f"```bash\n{broken}\n```\n")
    with pytest.raises((SystemExit, DcpnasError)):
        check_command(argv)


def test_set_takes_several_pairs_and_repeats():
    parser, _ = build_parser(["search"])
    args = parser.parse_args(["search", "--set", "a=1", "b=2", "--out", "o", "--set", "c=3"])
    assert args.overrides == ["a=1", "b=2", "c=3"]


def test_comment_and_fence_handling():
    text = "```bash\nmake demo   # not dcpnas\ndcpnas eval --checkpoint m.pt  # a comment\n" \
           "time dcpnas genotype list\n```\n```python\ndcpnas search --bogus\n```\n"
    assert readme_commands(text) == [(3, ["eval", "--checkpoint", "m.pt"]), (4, ["genotype", "list"])]
