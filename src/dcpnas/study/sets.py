"""Named sets of search configurations — the paper's ablation tables — and sets read from a file.

A *set* is a list of ``Entry(label, method, overrides)``; a study runs every entry × seed. The
reference entry is labelled ``dcpnas`` (paired differences are taken against it) and, with the
noise floor on, the study adds ``null``: ``dcpnas`` with its initial α perturbed by 1e-9
(``supernet.alpha_perturbation``), whose distance to ``dcpnas`` on the same seed is what chaos
alone produces (docs/METHOD.md, Decision N).

Sets register themselves with ``@study_set(name, caption)``; ``study_sets()`` lists them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

__all__ = ["Entry", "REFERENCE", "NULL", "NULL_PERTURBATION", "study_set", "study_sets",
           "get_study_set", "load_study_file"]

REFERENCE = "dcpnas"
NULL = "null"
NULL_PERTURBATION = 1e-9
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 64


@dataclass(frozen=True)
class Entry:
    """One configuration of a study: a label (a folder name), a method and ``--set`` overrides; or,
    with ``genotype`` (a name or a file), a given cell that is trained without a search."""

    label: str
    method: str = "dcpnas"
    overrides: tuple[str, ...] = ()
    paper: str = ""                    # the book's figure for this row, for the report
    genotype: str = ""

    def as_dict(self) -> dict:
        """The entry as saved with a study (``genotype`` only where it is given)."""
        d = {"label": self.label, "method": self.method, "overrides": list(self.overrides),
             "paper": self.paper}
        return {**d, "genotype": self.genotype} if self.genotype else d

    def __post_init__(self):
        if not _LABEL.match(self.label) or self.label in (".", ".."):
            raise ConfigError(f"study entry label {self.label!r} must be 1-64 letters, digits, "
                              f"'_', '.', '+' or '-'")
        for item in self.overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"study entry {self.label!r}: override {item!r} is not KEY=VALUE")


@dataclass(frozen=True)
class StudySet:
    name: str
    caption: str
    entries: tuple[Entry, ...] = field(default_factory=tuple)
    search_only: bool = False          # its question is about the genotypes found: no training


_SETS: dict[str, Callable[[], StudySet]] = {}


def study_set(name: str, caption: str, search_only: bool = False):
    """Decorator: register a function returning the entries of the set ``name``."""
    def wrap(fn: Callable[[], list[Entry]]):
        _SETS[name] = lambda: StudySet(name, caption, tuple(fn()), search_only)
        return fn
    return wrap


def study_sets() -> dict[str, str]:
    """Registered set names and their captions."""
    return {name: make().caption for name, make in _SETS.items()}


def get_study_set(name: str) -> StudySet:
    """A registered set, or a set read from a JSON file when ``name`` is a path to one."""
    if name in _SETS:
        return _SETS[name]()
    if name.endswith(".json") or Path(name).exists():
        return load_study_file(name)
    import difflib
    close = difflib.get_close_matches(name, list(_SETS), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown study set {name!r} (known: {', '.join(_SETS)}, or a .json file){hint}")


# -- the paper's tables --------------------------------------------------------------------------
@study_set("table-4.2", "Table 4.2: tangent direction D and reconstruction L_R (book: 66.7 / 68.3 / "
           "68.2 / 72.4 top-1 on ImageNet)")
def _table_4_2():
    return [Entry(REFERENCE, paper="72.4 (both)"),
            Entry("no-D", overrides=("ablation.use_discrepancy=false",), paper="68.3 or 68.2"),
            Entry("no-L_R", overrides=("ablation.use_reconstruction=false",), paper="68.2 or 68.3"),
            Entry("neither", overrides=("ablation.use_discrepancy=false",
                                        "ablation.use_reconstruction=false"), paper="66.7")]


@study_set("table-4.3", "Table 4.3: DCP-NAS against the baselines (book: DCP-NAS 72.4, CP-NAS 66.5, "
           "BNAS 64.3, random 51.3, DARTS 73.1 real-valued; w/o GGN 72.6)")
def _table_4_3():
    return [Entry(REFERENCE, paper="72.4"),
            Entry("cpnas", method="cpnas", paper="66.5"),
            Entry("cpnas-sample", method="cpnas-sample", paper="66.5 (CP-NAS's own search)"),
            Entry("bnas", method="bnas", paper="64.3"),
            Entry("darts", method="darts", paper="73.1 (real-valued network)"),
            Entry("random", method="random", paper="51.3"),
            Entry("dcpnas-exact", overrides=("objective.curvature=exact",), paper="72.6 (w/o GGN)")]


@study_set("table-4.4", "Table 4.4: the distance of D, Eq. 4.31 (book, DCP-NAS-S: F-norm 63.0, "
           "L1 62.7, cosine 62.5)")
def _table_4_4():
    return [Entry(REFERENCE, paper="63.0 (F-norm)"),
            Entry("l1", overrides=("objective.distance=l1",), paper="62.7"),
            Entry("cosine", overrides=("objective.distance=cosine",), paper="62.5")]


@study_set("pc-darts", "PC-DARTS partial channels (K = 2 at the quick preset's C = 4) with and without "
           "edge normalisation, against the full-channel search (supernet option, off by default)")
def _pc_darts():
    pc = "supernet.partial_channels=2"
    return [Entry(REFERENCE, paper="full channels"),
            Entry("pc2", overrides=(pc,), paper="PC-DARTS without edge normalisation"),
            Entry("pc2-en", overrides=(pc, "supernet.edge_normalization=true"), paper="PC-DARTS")]


@study_set("curvature-subbatch", "the GGN product on the whole α̂-batch against the default "
           "curvature sub-batch of 1/4 of it (objective.curvature_fraction, Decision C)")
def _curvature_subbatch():
    return [Entry(REFERENCE, paper="1/4 of the α̂-batch (default)"),
            Entry("cf1", overrides=("objective.curvature_fraction=1",), paper="whole α̂-batch")]


@study_set("distribution", "what DCP-NAS, CP-NAS and DARTS find, as genotype distributions over seeds "
           "(searches only; docs/METHOD.md#consensus)", search_only=True)
def _distribution():
    return [Entry(REFERENCE), Entry("cpnas", method="cpnas"), Entry("darts", method="darts")]


@study_set("smoke", "two entries, for trying the study machinery")
def _smoke():
    return [Entry(REFERENCE), Entry("cpnas", method="cpnas")]


# -- sets from a file -----------------------------------------------------------------------------
def load_study_file(path: str | Path) -> StudySet:
    """A set from JSON: ``{"name": ..., "caption": ..., "search_only": false, "entries": [{"label",
    "method", "overrides": [...], "paper", "genotype"}, ...]}``. Plain JSON only (nothing in it runs), at most 1 MiB
    and 64 entries, every field type-checked."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"study set file {p} does not exist or is not a regular file")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"study set file {p} is larger than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"study set file {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ConfigError(f"study set file {p} must be an object with a list 'entries'")
    items = data["entries"]
    if not 1 <= len(items) <= MAX_ENTRIES:
        raise ConfigError(f"study set file {p}: 'entries' must hold 1..{MAX_ENTRIES} entries")
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"study set file {p}: entry {i} is not an object")
        unknown = set(item) - {"label", "method", "overrides", "paper", "genotype"}
        if unknown:
            raise ConfigError(f"study set file {p}: entry {i} has unknown keys {sorted(unknown)}")
        label, method = item.get("label"), item.get("method", "dcpnas")
        overrides, paper = item.get("overrides", []), item.get("paper", "")
        genotype = item.get("genotype", "")
        if not all(isinstance(v, str) for v in (label, method, paper, genotype)):
            raise ConfigError(f"study set file {p}: entry {i} needs string 'label' and 'method' "
                              f"('paper' and 'genotype' strings too)")
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"study set file {p}: entry {i} 'overrides' must be a list of strings")
        entries.append(Entry(label, method, tuple(overrides), paper, genotype))
    labels = [e.label for e in entries]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ConfigError(f"study set file {p}: duplicate labels {dup}")
    name, caption = data.get("name", p.stem), data.get("caption", "")
    if not isinstance(name, str) or not isinstance(caption, str):
        raise ConfigError(f"study set file {p}: 'name' and 'caption' must be strings")
    search_only = data.get("search_only", False)
    if not isinstance(search_only, bool):
        raise ConfigError(f"study set file {p}: 'search_only' must be true or false")
    return StudySet(name, caption, tuple(entries), search_only)
