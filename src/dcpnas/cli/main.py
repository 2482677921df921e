"""The ``dcpnas`` command: argparse with one module per subcommand, imported lazily.

Each ``dcpnas.cli.<name>`` module (``name`` in :data:`SUBCOMMANDS`) exposes ``add_parser(subparsers)``,
which adds a parser called ``name``, and ``run(args) -> int``. Only the module of the chosen subcommand is
imported (subcommands pull in torch; ``dcpnas --version`` and ``--help`` should not). Subcommands whose
module does not exist are simply not offered.

Exit codes: 0 success, 2 user error (a :class:`~dcpnas.errors.DcpnasError`, a bad option, or an OSError of
the environment such as a full disk: one line on stderr), 130 interrupted (SIGINT), 143 terminated (SIGTERM,
handled like SIGINT: what batch schedulers send). Other exceptions are bugs and keep their traceback.
Output that the terminal's encoding cannot show (α, ±, →) is spelled in ASCII (utils/logging.py).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import platform
import signal
import sys
import traceback
from importlib import metadata
from types import ModuleType
from typing import NoReturn, Sequence

from .. import __version__
from ..errors import DcpnasError, RunFinished

__all__ = ["SUBCOMMANDS", "main", "build_parser", "available_subcommands"]

PROG = "dcpnas"
#: Planned subcommands, in help order; each is the module ``dcpnas.cli.<name>``.
SUBCOMMANDS: tuple[str, ...] = ("demo", "search", "study", "train", "eval", "export", "profile", "genotype",
                               "doctor")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _module_name(name: str) -> str:
    return f"{__package__}.{name}"


def _spec_origin(name: str) -> str | None | bool:
    """False when ``dcpnas.cli.<name>`` does not exist, else its source file (None if unknown)."""
    module = sys.modules.get(_module_name(name))
    if module is not None:
        return getattr(module, "__file__", None)
    try:
        spec = importlib.util.find_spec(_module_name(name))
    except (ImportError, ValueError):
        return False
    return False if spec is None else spec.origin


def available_subcommands() -> list[str]:
    """The names in :data:`SUBCOMMANDS` whose module exists (found without importing it)."""
    return [name for name in SUBCOMMANDS if _spec_origin(name) is not False]


def _summary(name: str) -> str:
    """First docstring line of the subcommand's module, read without importing it (for ``--help``)."""
    module = sys.modules.get(_module_name(name))
    doc = getattr(module, "__doc__", None) if module is not None else None
    origin = _spec_origin(name)
    if doc is None and isinstance(origin, str) and origin.endswith(".py"):
        try:
            with open(origin, encoding="utf-8") as f:
                doc = ast.get_docstring(ast.parse(f.read()))
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            doc = None  # a broken module shows up when it is chosen, not in everyone's --help
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _version_text() -> str:
    try:
        torch_version = metadata.version("torch")  # without importing torch (seconds)
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return f"{PROG} {__version__} (torch {torch_version}, python {platform.python_version()})"


def _chosen(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: the first non-option token (global options take no value)."""
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token if token in names else None
    return None


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(_module_name(name))
    except ImportError as exc:
        if exc.name == _module_name(name):
            raise
        # A missing optional dependency (e.g. torchvision) is the user's environment, not a bug.
        raise DcpnasError(f"subcommand '{name}' is unavailable: {exc}") from exc


def build_parser(argv: Sequence[str] = ()) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The top-level parser, with the full parser of the subcommand named in ``argv`` (its module is
    returned) and a placeholder (name and summary only) for every other available subcommand."""
    parser = _Parser(prog=PROG, description="DCP-NAS: Discrepant Child-Parent NAS for 1-bit CNNs.")
    parser.add_argument("--version", action="version", version=_version_text())
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for user errors too (or set DCPNAS_DEBUG=1)"
    )
    parser.add_argument("--no-memory-limit", action="store_true",
                        help="run sizes above the memory estimate's ceiling (or set DCPNAS_MEMORY_LIMIT=none)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    names = available_subcommands()
    chosen = _chosen(argv, names)
    module = None
    for name in names:
        if name == chosen:
            module = _load(name)
            module.add_parser(sub)
            if name not in sub.choices:
                raise RuntimeError(f"{module.__name__}.add_parser did not add a parser named {name!r}")
        else:
            sub.add_parser(name, help=_summary(name), add_help=False)
    return parser, module


#: Longest error message, and longest word in it: a message quoting a user's megabyte-long value or
#: path stays one readable line, its reason (after the value) included.
MESSAGE_LIMIT, WORD_LIMIT = 1000, 160


def _bounded(message: str) -> str:
    words = [w if len(w) <= WORD_LIMIT else f"{w[:100]}...{w[-50:]}" for w in message.split(" ")]
    message = " ".join(words)
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT - 4] + " ..."


def _debug_enabled(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("DCPNAS_DEBUG", "") not in ("", "0")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like SIGINT's KeyboardInterrupt: runs unwind the same way
    (atomic writes drop their temp file, the last checkpoint stays) and say so in one line."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _catch_sigterm():
    """Install the SIGTERM handler (main thread only); returns the previous handler, or None."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):   # not the main thread, or no SIGTERM here
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dcpnas`` command line; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = _catch_sigterm()
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    from ..utils.logging import ascii_fallback

    ascii_fallback()
    debug = _debug_enabled(argv)
    try:
        parser, module = build_parser(argv)
        args = parser.parse_args(argv)
        debug = debug or args.debug
        if module is None:  # cannot happen: parse_args accepted a subcommand that was not loaded
            raise RuntimeError(f"subcommand {args.command!r} was parsed but not loaded")
        from ..utils.allocator import tune_cpu_allocator
        from ..utils.budget import unlimited
        tune_cpu_allocator()                 # keep big CPU buffers in the heap (utils/allocator.py)
        with unlimited(args.no_memory_limit):
            code = module.run(args)
        return 0 if code is None else int(code)
    except SystemExit as exc:  # --help, --version and usage errors (also a subcommand's own parser.error)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # SystemExit("message") means: print it, exit 1
        return 1
    except RunFinished as exc:     # --resume of a finished run: nothing to do, and not an error
        print(f"{PROG}: {exc}")
        return 0
    except DcpnasError as exc:
        if debug:
            traceback.print_exc()
        # The contract is one line; fold stray newlines rather than print a half message.
        message = " ".join(str(exc).split("\n")) or type(exc).__name__
        print(f"{PROG}: error: {_bounded(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if debug:
            traceback.print_exc()
        if isinstance(exc, Terminated):
            print(f"{PROG}: interrupted (SIGTERM)", file=sys.stderr)
            return 143
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`dcpnas profile ... | head`): not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # The environment, not a bug: a path that cannot be read or written (permission, no space, not
        # a directory) that no module turned into a DcpnasError. One line naming the file and why.
        if debug:
            traceback.print_exc()
        from ..utils.io import os_reason

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {_bounded(where + os_reason(exc))}", file=sys.stderr)
        return 2
