"""No import cycle inside the package, imports inside functions included, and every module imports on
its own (docs/ARCHITECTURE.md).

The graph is read from the source with ``ast``: every ``import``/``from … import`` anywhere in a
module (functions too), except under ``if TYPE_CHECKING:``, which never runs. An edge goes to the
module named and, for ``from package import name``, to ``package.name`` when that is a module. A
package's ``__init__`` is a module like any other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dcpnas

ROOT = Path(dcpnas.__file__).resolve().parent


def module_files(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes of ``tree`` at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules its import statements run.

    ``from p import x`` runs ``p.x`` when that is a module, else reads ``x`` from ``p``; importing
    ``a.b.c`` also runs ``a`` and ``a.b``, except the module's own parent packages, which are
    already running when it is (an explicit ``from .. import name`` still counts)."""
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        deps: set[str] = set()

        def add(target: str, explicit: bool) -> None:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                last = i == len(parts)
                if dep in files and dep != name and (dep not in ancestors or (last and explicit)):
                    deps.add(dep)

        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    add(a.name, explicit=False)
                continue
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if sub in files:
                    add(sub, explicit=False)
                else:
                    add(mod, explicit=True)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]):
    """One cycle as a list of modules (first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {m: WHITE for m in graph}
    stack: list[str] = []

    def visit(m):
        color[m] = GREY
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if color.get(d) == GREY:
                return stack[stack.index(d):] + [d]
            if color.get(d) == WHITE:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        color[m] = BLACK
        return None

    for m in sorted(graph):
        if color[m] == WHITE:
            found = visit(m)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n"
                              "import pkg.a\n")
    graph = import_graph(module_files(pkg))
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    assert find_cycle(import_graph(module_files(pkg))) is None


def test_no_import_cycle_inside_the_package():
    cycle = find_cycle(import_graph(module_files()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_imports_on_its_own():
    """Each module first in a clean interpreter state: one that works only after another was
    imported fails here."""
    names = [m for m in module_files() if not m.endswith("__main__")]
    code = (
        "import importlib, sys, traceback\n"
        f"names = {names!r}\n"
        "bad = []\n"
        "for n in names:\n"
        "    for m in [m for m in sys.modules if m == 'dcpnas' or m.startswith('dcpnas.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{n}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
