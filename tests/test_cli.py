"""The CLI skeleton: lazy subcommand modules, exit codes and one-line errors.

The real subcommands are written elsewhere; these tests plug in fake ``dcpnas.cli.<name>`` modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

import dcpnas
import dcpnas.cli
from dcpnas.cli import main as cli_main
from dcpnas.errors import ConfigError


def fake_module(name: str, run, doc: str = "A fake command."):
    mod = types.ModuleType(f"dcpnas.cli.{name}", doc)

    def add_parser(subparsers):
        p = subparsers.add_parser(name, help=doc)
        p.add_argument("--n", type=int, default=1)
        return p

    mod.add_parser = add_parser
    mod.run = run
    return mod


@pytest.fixture
def commands(monkeypatch):
    """Install fake subcommand modules: ``commands(name=run, ...)``; only those are offered."""

    def install(**runs):
        for name, run in runs.items():
            monkeypatch.setitem(sys.modules, f"dcpnas.cli.{name}", fake_module(name, run))
        monkeypatch.setattr(cli_main, "SUBCOMMANDS", tuple(runs))

    monkeypatch.delenv("DCPNAS_DEBUG", raising=False)
    return install


def one_line(text: str) -> str:
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_version(capsys):
    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"dcpnas {dcpnas.__version__} (torch ")


def test_no_subcommand(commands, capsys):
    commands(fake=lambda args: 0)
    assert cli_main.main([]) == 2
    assert one_line(capsys.readouterr().err).startswith("dcpnas: error: the following arguments are required")


def test_unknown_subcommand(commands, capsys):
    commands(fake=lambda args: 0)
    assert cli_main.main(["frobnicate"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "invalid choice: 'frobnicate'" in line and "'fake'" in line


def test_unknown_option(commands, capsys):
    commands(fake=lambda args: 0)
    assert cli_main.main(["fake", "--frob"]) == 2
    assert "unrecognized arguments: --frob" in one_line(capsys.readouterr().err)
    assert cli_main.main(["fake", "--n", "x"]) == 2
    assert "invalid int value: 'x'" in one_line(capsys.readouterr().err)


def test_dispatch_and_exit_codes(commands):
    seen = []
    commands(ok=lambda args: seen.append(args.n) or 0, three=lambda args: 3, silent=lambda args: None)
    assert cli_main.main(["ok", "--n", "5"]) == 0 and seen == [5]
    assert cli_main.main(["three"]) == 3
    assert cli_main.main(["silent"]) == 0


def _raise(exc):
    def run(args):
        raise exc

    return run


def test_user_error_is_one_line_exit_2(commands, capsys):
    commands(bad=_raise(ConfigError("unknown config key 'lrr' (did you mean 'lr'?)")))
    assert cli_main.main(["bad"]) == 2
    assert capsys.readouterr().err == "dcpnas: error: unknown config key 'lrr' (did you mean 'lr'?)\n"


def test_debug_shows_traceback(commands, capsys, monkeypatch):
    commands(bad=_raise(ConfigError("broken")))
    assert cli_main.main(["--debug", "bad"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("dcpnas: error: broken\n")
    monkeypatch.setenv("DCPNAS_DEBUG", "1")
    assert cli_main.main(["bad"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_exit_130(commands, capsys):
    commands(slow=_raise(KeyboardInterrupt()))
    assert cli_main.main(["slow"]) == 130
    assert one_line(capsys.readouterr().err) == "dcpnas: interrupted"


def test_bugs_keep_their_traceback(commands):
    commands(buggy=_raise(ZeroDivisionError("oops")))
    with pytest.raises(ZeroDivisionError):
        cli_main.main(["buggy"])


def test_only_the_chosen_module_is_loaded(commands, monkeypatch, capsys):
    def exploding_add_parser(subparsers):
        raise AssertionError("must not be loaded")

    commands(fake=lambda args: 0, other=lambda args: 0)
    monkeypatch.setattr(sys.modules["dcpnas.cli.other"], "add_parser", exploding_add_parser)
    assert cli_main.main(["fake"]) == 0
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fake" in out and "other" in out and "A fake command." in out


@pytest.fixture
def extra_cli_dir(tmp_path, monkeypatch):
    """A folder searched for ``dcpnas.cli.<name>`` modules, as if the files were in the package."""
    monkeypatch.setattr(dcpnas.cli, "__path__", [*dcpnas.cli.__path__, str(tmp_path)])
    written = []

    def write(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(source)
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(f"dcpnas.cli.{name}", None)


def test_missing_modules_are_not_offered_and_files_are_found(commands, monkeypatch, extra_cli_dir, capsys):
    extra_cli_dir(
        "zz_real",
        '"""Real file command."""\n'
        "def add_parser(sub):\n    sub.add_parser('zz_real')\n"
        "def run(args):\n    return 7\n",
    )
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", ("zz_real", "zz_not_written_yet"))
    assert cli_main.available_subcommands() == ["zz_real"]
    assert cli_main.main(["--help"]) == 0
    assert "Real file command." in capsys.readouterr().out
    assert "dcpnas.cli.zz_real" not in sys.modules  # --help read the docstring without importing
    assert cli_main.main(["zz_real"]) == 7
    assert cli_main.main(["zz_not_written_yet"]) == 2
    assert "invalid choice" in one_line(capsys.readouterr().err)


def test_missing_dependency_is_a_user_error(monkeypatch, extra_cli_dir, capsys):
    extra_cli_dir("zz_needs_dep", "import zz_no_such_dependency\n")
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", ("zz_needs_dep",))
    monkeypatch.delenv("DCPNAS_DEBUG", raising=False)
    assert cli_main.main(["zz_needs_dep"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == "dcpnas: error: subcommand 'zz_needs_dep' is unavailable: No module named 'zz_no_such_dependency'"


def test_python_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(dcpnas.__path__[0]), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-m", "dcpnas", "--version"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0 and out.stdout.startswith("dcpnas ")
