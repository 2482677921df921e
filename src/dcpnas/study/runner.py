"""A study: every entry of a set × seeds, each trial a search and then the training of its genotype.

Each trial is two ordinary runs of the command line, in their own run directories::

    <out>/study-<set>.json           the study's settings (set, seeds, presets, entries)
    <out>/<label>/seed-<s>/trial.json what the trial runs (entry, seed, presets, overrides)
    <out>/<label>/seed-<s>/search    dcpnas search --preset P --method M --set seed=s <overrides>
    <out>/<label>/seed-<s>/train     dcpnas train -g <search>/genotype.json --preset T --set seed=s
    <out>/summary-<set>.json, .md, .png

An entry with a ``genotype`` (a name or a file) has no search: its trials train that cell, so that
given cells (the published ones, a consensus) are trained over the same seeds as found ones.

Several sets may share one directory: a trial is identified by its label and seed, so the entries
that the paper's tables have in common (``dcpnas``, ``null``) run once; ``trial.json`` makes sure
a label means the same configuration in every set (a clash is refused).

Trials run as subprocesses (``jobs`` at a time, one thread each, ``utils.subruns``), so a crash or a
kill stays inside one run and the study resumes where it stopped: a run with a summary is done and skipped, one with a
checkpoint continues with ``--resume``, one with neither starts again. The study directory is
claimed with kind ``study`` and each sub-run claims its own (``utils.rundir``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import DcpnasError
from ..utils.io import atomic_write_json
from ..utils.logging import console
from ..utils.subruns import cli_prefix, prepare_run, run_all, run_logged
from ..space.genotype import load_genotype
from .sets import NULL, NULL_PERTURBATION, REFERENCE, Entry, get_study_set

__all__ = ["StudyConfig", "Trial", "plan_trials", "run_study"]

SEARCH_DONE = "summary.json"
TRAIN_DONE = "summary.json"


@dataclass
class StudyConfig:
    """What a study runs. ``train_overrides`` apply to every training (the CPU protocol)."""

    set_name: str
    seeds: int = 3
    first_seed: int = 0
    search_preset: str = "quick"
    train_preset: str = "quick"
    search_overrides: list[str] = field(default_factory=list)
    train_overrides: list[str] = field(default_factory=list)
    noise_floor: bool = True
    jobs: int = 2
    train: bool = True
    priority: list[str] = field(default_factory=list)   # labels run for every seed first

    def validate(self) -> None:
        if not 1 <= self.seeds <= 100:
            raise DcpnasError(f"--seeds must be in 1..100, got {self.seeds}")
        if not 1 <= self.jobs <= 64:
            raise DcpnasError(f"--jobs must be in 1..64, got {self.jobs}")
        from ..config.limits import check_seed

        check_seed(self.first_seed, "--first-seed")
        check_seed(self.first_seed + self.seeds - 1, "--first-seed + --seeds - 1")


@dataclass(frozen=True)
class Trial:
    entry: Entry
    seed: int
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / self.entry.label / f"seed-{self.seed}"

    @property
    def search_dir(self) -> Path:
        return self.dir / "search"

    @property
    def train_dir(self) -> Path:
        return self.dir / "train"


def study_entries(cfg: StudyConfig) -> list[Entry]:
    """The set's entries, plus the null perturbation of the reference when the floor is on."""
    entries = list(get_study_set(cfg.set_name).entries)
    if cfg.noise_floor and any(e.label == REFERENCE and not e.genotype for e in entries) \
            and not any(e.label == NULL for e in entries):
        ref = next(e for e in entries if e.label == REFERENCE)
        entries.append(Entry(NULL, ref.method, ref.overrides +
                             (f"supernet.alpha_perturbation={NULL_PERTURBATION}",),
                             paper="noise floor: the reference with α₀ perturbed by 1e-9"))
    return entries


def plan_trials(cfg: StudyConfig, out: Path) -> list[Trial]:
    """Seed-major order, so that after k seeds every entry has k trials (a stopped study is
    already paired); the ``priority`` labels first, for every seed."""
    entries = study_entries(cfg)
    labels = {e.label for e in entries}
    unknown = [p for p in cfg.priority if p not in labels]
    if unknown:
        raise DcpnasError(f"--priority {unknown[0]!r} is not an entry of the set "
                          f"({', '.join(sorted(labels))})")
    trials = [Trial(e, s, out) for s in range(cfg.first_seed, cfg.first_seed + cfg.seeds)
              for e in entries]
    return sorted(trials, key=lambda t: t.entry.label not in cfg.priority)  # stable


def check_entries(cfg: StudyConfig, trials: Sequence[Trial]) -> None:
    """Resolve every trial's search and training config the way its commands will: an unknown method
    or key in a set (a file's especially) is one error before the study writes anything, not a failure
    inside its first trial."""
    from ..config import resolve_config
    from ..errors import ConfigError
    from ..search import resolve_search_config
    from ..train.config import TrainConfig

    entries = {t.entry.label: t.entry for t in trials}
    for entry in entries.values():
        search = ["threads=1", *cfg.search_overrides, *entry.overrides, f"method={entry.method}"]
        train = ["threads=1", *cfg.train_overrides, "model.genotype=DARTS_V2"]
        try:
            resolve_search_config(preset=cfg.search_preset, overrides=search)   # method check included
            if cfg.train:
                resolve_config(TrainConfig, "train", preset=cfg.train_preset, overrides=train)
        except ConfigError as exc:
            raise ConfigError(f"study entry {entry.label!r}: {exc}") from None


def search_command(cfg: StudyConfig, t: Trial, resume: bool) -> list[str]:
    if resume:
        return cli_prefix() + ["search", "--out", str(t.search_dir), "--resume", "--quiet"]
    sets = [f"seed={t.seed}", "threads=1", *cfg.search_overrides, *t.entry.overrides]
    return cli_prefix() + ["search", "--preset", cfg.search_preset, "--method", t.entry.method,
                     "--out", str(t.search_dir), "--quiet", "--set", *sets]


def trial_genotype(t: Trial) -> str:
    """What the trial trains: the entry's given genotype, else its search's result."""
    return t.entry.genotype or str(t.search_dir / "genotype.json")


def train_command(cfg: StudyConfig, t: Trial, resume: bool) -> list[str]:
    if resume:
        return cli_prefix() + ["train", "--out", str(t.train_dir), "--resume", "--preset",
                         cfg.train_preset, "--set", f"seed={t.seed}", "threads=1",
                         *cfg.train_overrides, "-g", trial_genotype(t)]
    return cli_prefix() + ["train", "-g", trial_genotype(t), "--preset",
                     cfg.train_preset, "--out", str(t.train_dir), "--set", f"seed={t.seed}",
                     "threads=1", *cfg.train_overrides]


def trial_settings(cfg: StudyConfig, t: Trial) -> dict:
    return json.loads(json.dumps({
        "entry": {k: v for k, v in t.entry.as_dict().items() if k != "paper"},
        "seed": t.seed, "search_preset": cfg.search_preset, "train_preset": cfg.train_preset,
        "search_overrides": cfg.search_overrides, "train_overrides": cfg.train_overrides,
        "train": cfg.train}))


def check_trial(cfg: StudyConfig, t: Trial) -> None:
    """Refuse a trial folder that holds another configuration under the same label."""
    path = t.dir / "trial.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        new = trial_settings(cfg, t)
        if old != new:
            diff = sorted(k for k in new if not isinstance(old, dict) or old.get(k) != new[k])
            raise DcpnasError(f"{t.dir} holds a trial of another configuration ({', '.join(diff)} "
                              f"differ); give this entry another label or use another --out")


def run_trial(cfg: StudyConfig, t: Trial) -> dict:
    """Search then train one trial, skipping or resuming what is already there."""
    start = time.perf_counter()
    check_trial(cfg, t)
    t.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(t.dir / "trial.json", trial_settings(cfg, t))
    state = None if t.entry.genotype else prepare_run(t.search_dir, "ckpt/last.pt")
    if state is not None:
        run_logged(search_command(cfg, t, resume=state), t.dir / "search.log")
    if cfg.train:
        state = prepare_run(t.train_dir, "checkpoint.pt")
        if state is not None:
            run_logged(train_command(cfg, t, resume=state), t.dir / "train.log")
    return {"label": t.entry.label, "seed": t.seed, "time_s": time.perf_counter() - start}


def set_file_name(cfg: StudyConfig) -> str:
    """The set's name as a file-name part (a set from a file: its 'name' or the file's stem)."""
    import re
    return re.sub(r"[^A-Za-z0-9._-]", "_", get_study_set(cfg.set_name).name)[:64]


def _has_studies(out: Path) -> bool:
    return out.is_dir() and any(out.glob("study-*.json"))


def run_study(cfg: StudyConfig, out: str | Path, *, resume: bool = False) -> dict:
    """Run (or continue) the study in ``out``; returns the summary (also written to ``out``)."""
    from ..utils.rundir import claim_run_dir
    from .summary import write_summary

    cfg.validate()
    if get_study_set(cfg.set_name).search_only:
        cfg.train = False              # the set asks about the genotypes found, not their training
    out = Path(out)
    trials = plan_trials(cfg, out)       # validates the set before anything is written
    for t in trials:
        check_trial(cfg, t)
    check_entries(cfg, trials)
    for e in {t.entry for t in trials if t.entry.genotype}:
        load_genotype(e.genotype)        # a given cell must load: one line now, not 12 failed trials
    name = set_file_name(cfg)
    with claim_run_dir(out, "study", resume=resume or _has_studies(out)) as run:
        saved = run.path / f"study-{name}.json"
        settings = {"format": "dcpnas-study/1", **asdict(cfg),
                    "entries": [e.as_dict() for e in study_entries(cfg)]}
        settings = json.loads(json.dumps(settings))  # tuples as lists, as read back
        if saved.exists():
            old = json.loads(saved.read_text(encoding="utf-8"))
            keep = ("jobs", "priority")
            diff = [k for k in settings if k not in keep and old.get(k) != settings[k]]
            if diff:
                raise DcpnasError(f"cannot continue the study in {out}: its '{diff[0]}' differs "
                                  f"from the saved study.json (use another --out)")
        atomic_write_json(saved, settings)
        todo = [t for t in trials if not (t.entry.genotype or (t.search_dir / SEARCH_DONE).exists())
                or (cfg.train and not (t.train_dir / TRAIN_DONE).exists())]
        console(f"study {cfg.set_name}: {len(trials)} trials ({len(trials) - len(todo)} done), "
                f"{cfg.jobs} at a time -> {out}")

        def work(t: Trial):
            r = run_trial(cfg, t)
            console(f"study: {t.entry.label} seed {t.seed} done in {r['time_s']:.0f} s")

        failures = run_all(work, todo, cfg.jobs, name=lambda t: f"study: {t.entry.label} seed {t.seed}")
        summary = write_summary(cfg, out, trials, name)
        if failures:
            raise DcpnasError(f"{len(failures)} trial(s) failed, first: {failures[0]} "
                              f"(rerun the same command to retry; finished trials are kept)")
        return summary
