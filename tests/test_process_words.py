"""The repository speaks to its reader, not to whoever wrote it: no tracked text file refers to the
development process (work sessions, issue or item numbers, "this change", commit hashes in prose).
Git keeps that history; the figures live in docs/RESULTS.md with their provenance."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".sh", ".cfg", ".ini", ".yml", ".yaml", ""}

# (what, pattern). Each is a phrase that only makes sense to the author of a change.
PROCESS_WORDS = [
    ("a work session", re.compile(r"\bsessions?\b", re.I)),
    ("an issue number", re.compile(r"\bissues? ?#?\d+", re.I)),
    ("an item of an issue", re.compile(r"\bitems? \d+\b(?! (?:of|in) (?:the )?(?:list|table|batch))", re.I)),
    # "#12" of our own tracker (an upstream citation names its repository, ALLOWED below).
    ("an issue reference", re.compile(r"(?<![\w/.\-'\"])#\d+\b")),
    ("a change as history", re.compile(r"\b(?:this|the last|the next|before the|after the) change\b", re.I)),
    ("a before/after narrative", re.compile(r"\b(?:previously|formerly|used to be)\b", re.I)),
    ("a filed or blocked ticket", re.compile(r"\b(?:was filed|filed as|blocked pending)\b", re.I)),
]
# Commit hashes are provenance in the results pages and beside a genotype; anywhere else they are
# a diary ("commit 1a2b3c4", "at 1a2b3c4 + ...").
COMMIT = ("a commit hash in prose", re.compile(r"\bcommits? [0-9a-f]{7,40}\b|\b(?:at|since|before|after|until) [0-9a-f]{7}\b"))
PROVENANCE_FILES = {"docs/RESULTS.md", "benchmarks/README.md"}
# Technical uses of a listed word (pytest's fixture scope) and upstream citations ("owner/repo#12").
ALLOWED = [re.compile(r"""scope=["']session["']"""), re.compile(r"[\w.-]+/[\w.-]+ ?#\d+")]


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    paths = [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and n != "requirements.lock"]
    return [p for p in paths if p.is_file() and b"\0" not in p.read_bytes()[:4096]]


def process_word_hits(text: str, relative: str) -> list[str]:
    """``line: what: text`` for each line of ``text`` that carries a process word."""
    patterns = list(PROCESS_WORDS)
    if relative not in PROVENANCE_FILES and not relative.startswith("examples/genotypes/"):
        patterns.append(COMMIT)
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        cleaned = line
        for allowed in ALLOWED:
            cleaned = allowed.sub("", cleaned)
        for what, pattern in patterns:
            if pattern.search(cleaned):
                hits.append(f"{number}: {what}: {line.strip()[:120]}")
    return hits


def test_no_tracked_file_speaks_of_the_development_process():
    hits = []
    for path in tracked_text_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative == "tests/test_process_words.py":
            continue
        hits += [f"{relative}:{hit}" for hit in process_word_hits(path.read_text(encoding="utf-8"), relative)]
    assert not hits, f"{len(hits)} lines speak of the development process:\n" + "\n".join(hits)


@pytest.mark.parametrize("line", [
    # built from parts so that this file itself carries none of the phrases it rejects
    "measured in " + "sess" + "ion 12", "Sess" + "ions 12–13 ran it", "the fix for " + "issue 9", "see #14",
    "before this change", "commit 41c7ab6 made it", "Previously the step", "which item 3 rules out",
    "re-run at 8c5f236 + this benchmark", "this was filed as blocked",
])
def test_a_process_word_is_caught(line):
    assert process_word_hits(line, "README.md")


@pytest.mark.parametrize("line", [
    '@pytest.fixture(scope="session")', "sess = ort.InferenceSession(path)",
    "uxlfoundation/oneDNN#6035", "quark0/darts #110", "a change of layout", "issue a warning",
    "the first item of the list", 'color="#333"', "variables that change which kernels run", "| dcpnas | 41c7ab6 | 2026-11-30 |",
])
def test_technical_text_passes(line):
    assert not process_word_hits(line, "docs/RESULTS.md")
