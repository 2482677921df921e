"""The repository is self-contained: every document the README and the code cite is in it, every
``docs/METHOD.md#anchor`` they cite exists, and every relative link of a Markdown document leads to a
file and anchor that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("src/dcpnas/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("examples/*.py"),
                  *ROOT.glob("benchmarks/*.py"), ROOT / "README.md", *ROOT.glob("docs/*.md"),
                  *ROOT.glob("benchmarks/*.md"), *ROOT.glob("examples/**/*.md")])
SOURCES = [p for p in SOURCES if p != Path(__file__).resolve()]
# How outside method notes would be cited ("method D.1", "(D.4, ...)", "§5.4"; the book's §4.4 is
# a reference, not a document).
OUTSIDE = re.compile(r"shared/docs|dcpnas-method|method (D\.|§|sections? |\d)|\(section \d|\.\./shared|\bD\.\d|§(?!4\.4)\d")


def method_anchors() -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>', (ROOT / "docs" / "METHOD.md").read_text(encoding="utf-8")))


def test_nothing_cites_a_document_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in SOURCES
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_every_cited_method_anchor_exists():
    anchors = method_anchors()
    assert {"decision-g", "decision-t", "decision-c", "decision-l", "decision-o", "decision-r",
            "decision-n", "eq-4-33", "references"} <= anchors
    cited = {(p.relative_to(ROOT), a) for p in SOURCES
             for a in re.findall(r"METHOD\.md#([A-Za-z0-9-]+)", p.read_text(encoding="utf-8"))}
    inside = set(re.findall(r"\]\(#([A-Za-z0-9-]+)\)", (ROOT / "docs" / "METHOD.md").read_text(encoding="utf-8")))
    missing = sorted({f"{p}: #{a}" for p, a in cited if a not in anchors} | {f"METHOD.md: #{a}" for a in inside - anchors})
    assert not missing, missing


@pytest.mark.parametrize("letter", list("GTDLCPSWROBYKXNF"))
def test_each_decision_letter_has_its_heading(letter):
    text = (ROOT / "docs" / "METHOD.md").read_text(encoding="utf-8")
    assert re.search(rf"^### Decision {letter} — ", text, re.M)


def anchors_of(path: Path) -> set[str]:
    """Explicit ``<a id>`` anchors and GitHub's heading slugs of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
             for h in re.findall(r"^#+ (.+)$", text, re.M)}
    return set(re.findall(r'<a id="([^"]+)"></a>', text)) | slugs


def test_every_relative_markdown_link_resolves():
    broken = []
    for doc in [p for p in SOURCES if p.suffix == ".md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue                                    # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors_of(file):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such anchor)")
    assert not broken, "\n".join(broken)


# The folders docs/ARCHITECTURE.md describes file by file (the others, e.g. data/ and cli/, in a line).
ITEMISED = ["kernels", "binary", "space", "search", "search/maths", "search/run", "search/methods",
            "utils", "study"]


@pytest.mark.parametrize("folder", ITEMISED)
def test_the_architecture_page_names_every_module_of_an_itemised_folder(folder):
    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = sorted(p.name for p in (ROOT / "src" / "dcpnas" / folder).glob("*.py") if p.name != "__init__.py")
    assert modules
    missing = [m for m in modules if not re.search(rf"(?<![\w/.]){re.escape(m)}\b", page)]
    assert not missing, f"docs/ARCHITECTURE.md does not describe {folder}/{', '.join(missing)}"
