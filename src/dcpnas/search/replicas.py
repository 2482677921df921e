"""``dcpnas search --replicas K``: K searches of one configuration, read as a distribution, and their
consensus genotype (docs/METHOD.md#consensus).

The replicas differ only by what their mode (a :data:`MODES` strategy) changes: the seed (``seed``,
default: replica r runs seed + r) or the initial α (``perturb``: the same seed, α₀ + ε·N(0, 1) with the
r-th draw, ε = ``supernet.alpha_perturbation`` or the null perturbation's 1e-9). Out directory::

    replicas.json                 what runs: K, the mode, each replica's overrides
    config.json                   the resolved search config every replica starts from
    replicas/r<i>/                replica i: an ordinary search run directory (its search.log beside it)
    genotype.json                 the consensus genotype; cell_normal.svg, cell_reduce.svg
    agreement.json                edge × op counts, the consensus's choices with their counts, agreement
    agreement_normal.png, agreement_reduce.png   the counts as heatmaps, the consensus boxed

Replicas run as subprocesses (``jobs`` at a time, ``utils.subruns``), as a study's trials do, so a
finished replica is skipped, a killed one resumes from its checkpoint, and rerunning the command
continues the set. The directory is claimed with kind ``replicas``; each replica claims its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import save_config
from ..errors import ConfigError, DcpnasError
from ..space.genotype import from_dict as genotype_from_dict
from ..utils.io import atomic_write_json
from ..utils.logging import console
from ..utils.registry import Registry
from .config import SearchConfig
from .results import final_alphas, read_summary

__all__ = ["MODES", "ReplicaMode", "METHOD_NOTES", "run_replicas", "merge_replicas", "MAX_REPLICAS"]

FORMAT = "dcpnas-replicas/1"
MAX_REPLICAS = 100
#: The size of the null perturbation (docs/METHOD.md#decision-n), perturb mode's default ε.
PERTURBATION = 1e-9

#: What a consensus means where the search's α are not a softmax relaxation.
METHOD_NOTES = {
    "random": "each replica is the best of its own random samples; the consensus is a vote over "
              "those winners (ties by their one-hot codes: a node's first gene before its second)",
    "cpnas-sample": "each replica's choices are the ops its sample-and-prune kept; the consensus is a "
                    "vote over them (ties by the softmax of prune level + mean indicator)",
}

#: replica mode -> strategy (``--replica-mode``)
MODES: Registry = Registry("replica mode")


class ReplicaMode:
    """How replica ``r`` differs from the base config: the ``--set`` overrides it adds."""

    name = "?"

    def overrides(self, cfg: SearchConfig, r: int) -> list[str]:
        raise NotImplementedError


@MODES.register("seed")
class SeedReplicas(ReplicaMode):
    """Replica r runs with seed = the config's seed + r (data order, weights, α₀ all change)."""

    def overrides(self, cfg, r):
        return [f"seed={cfg.seed + r}"]


@MODES.register("perturb")
class PerturbReplicas(ReplicaMode):
    """The config's seed for every replica; α₀ perturbed by ε·N(0, 1), replica r drawing N(0, 1) with
    its own generator (ε = supernet.alpha_perturbation, or 1e-9 when that is 0)."""

    def overrides(self, cfg, r):
        eps = cfg.supernet.alpha_perturbation or PERTURBATION
        return [f"supernet.alpha_perturbation={eps!r}", f"supernet.alpha_perturbation_seed={r}"]


def _replica_dir(out: Path, r: int) -> Path:
    return out / "replicas" / f"r{r}"


def _settings(cfg: SearchConfig, k: int, mode: str) -> dict:
    strategy = MODES[mode]()
    return {"format": FORMAT, "replicas": k, "mode": mode, "method": cfg.method,
            "overrides": [strategy.overrides(cfg, r) for r in range(k)]}


def _check_saved(out: Path, cfg: SearchConfig, mode: str, replicas: int) -> None:
    """A directory that already holds replicas continues only with the same base config and mode,
    and with at least as many replicas (more extend the set)."""
    from .run.loop import check_resume_config

    saved = json.loads((out / "replicas.json").read_text(encoding="utf-8"))
    if saved.get("mode") != mode:
        raise ConfigError(f"{out} holds replicas of mode {saved.get('mode')!r}, not {mode!r}; "
                          f"use another --out")
    held = saved.get("replicas")
    if isinstance(held, int) and replicas < held:  # the written consensus is of all `held`
        dropped = f"r{replicas}" + (f"..r{held - 1}" if held - replicas > 1 else "")
        raise ConfigError(f"{out} holds a set of {held} replicas; --replicas {replicas} would drop "
                          f"{dropped} from its consensus (pass --replicas {held} to "
                          f"continue it, or more to add replicas)")
    base = json.loads((out / "config.json").read_text(encoding="utf-8"))["config"]
    check_resume_config(base, cfg, f"the replicas in {out}")


def load_saved(out: str | Path) -> tuple[SearchConfig, dict]:
    """The base config and settings of the replicas in ``out`` (for ``--resume`` without a config)."""
    from .run.api import resolve_search_config

    out = Path(out)
    path = out / "replicas.json"
    if not path.is_file() or not (out / "config.json").is_file():
        raise ConfigError(f"nothing to resume in {out}: it holds no replicas.json and config.json")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a replicas file (format {FORMAT})")
    return resolve_search_config(out / "config.json"), saved


def _replica_command(base: Path, run_dir: Path, overrides: list[str], resume: bool) -> list[str]:
    from ..utils.subruns import cli_prefix

    if resume:
        return cli_prefix() + ["search", "--out", str(run_dir), "--resume", "--quiet"]
    return cli_prefix() + ["search", "--config", str(base), "--out", str(run_dir), "--quiet",
                           "--set", *overrides]


def run_replicas(cfg: SearchConfig, out: str | Path, *, replicas: int, mode: str = "seed",
                 jobs: int = 1, resume: bool = False, quiet: bool = False) -> dict:
    """Run (or continue) ``replicas`` searches of ``cfg`` in ``out`` and write their consensus;
    returns the agreement record (also ``out/agreement.json``). ``quiet`` keeps only failures and
    the closing agreement line."""
    from ..utils.subruns import prepare_run, run_all, run_logged
    from ..utils.rundir import check_run_dir, claim_run_dir, run_kind

    if mode not in MODES:
        raise ConfigError(f"--replica-mode must be one of {', '.join(MODES.names())}, got {mode!r}")
    if not 2 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"--replicas must be in 2..{MAX_REPLICAS}, got {replicas}")
    if not 1 <= jobs <= 64:
        raise ConfigError(f"--jobs must be in 1..64, got {jobs}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--replicas runs its searches as subprocesses; do not start it under torchrun")
    out = Path(out)
    continuing = out.is_dir() and run_kind(out) == "replicas"
    if resume and not continuing:
        raise ConfigError(f"nothing to resume in {out}: it holds no replicas")
    check_run_dir(out, "replicas", resume=continuing)
    if continuing and (out / "replicas.json").is_file():
        _check_saved(out, cfg, mode, replicas)
    if not cfg.threads:  # one process per job: share the cores, do not oversubscribe them
        cfg.threads = max(1, (os.cpu_count() or 1) // jobs)
    settings = _settings(cfg, replicas, mode)
    with claim_run_dir(out, "replicas", resume=continuing) as run:
        base = run.path / "config.json"
        if not base.exists():
            save_config(cfg, base, extra={"replicas": replicas, "mode": mode})
        atomic_write_json(run.path / "replicas.json", settings)
        todo = [r for r in range(replicas) if read_summary(_replica_dir(out, r)) is None]
        if not quiet:
            console(f"replicas: {replicas} searches of {cfg.method} ({mode} mode; "
                    f"{replicas - len(todo)} done), {jobs} at a time -> {out}")

        def work(r: int) -> None:
            run_dir = _replica_dir(out, r)
            state = prepare_run(run_dir, "ckpt/last.pt")
            if state is not None:
                run_logged(_replica_command(base, run_dir, settings["overrides"][r], state),
                           run_dir.parent / f"r{r}.log")
            if not quiet:
                console(f"replicas: r{r} done")

        failures = run_all(work, todo, jobs, name=lambda r: f"replicas: r{r}")
        if failures:
            raise DcpnasError(f"{len(failures)} of {replicas} replicas failed, first: {failures[0]} "
                              f"(rerun the same command to retry; finished replicas are kept)")
        record = merge_replicas(out, replicas, cfg.method, mode)
    console(record["line"])
    return record


def merge_replicas(out: str | Path, replicas: int, method: str, mode: str) -> dict:
    """Read the ``replicas`` finished runs under ``out/replicas`` and write the consensus genotype,
    its drawings, ``agreement.json`` and the heatmaps."""
    from ..space import distribution as dist
    from ..space.draw import draw_cell
    from ..space.genotype import CELL_TYPES
    from ..space.primitives import PRIMITIVES

    out = Path(out)
    genotypes, alphas, rows = [], [], []
    for r in range(replicas):
        run_dir = _replica_dir(out, r)
        summary = read_summary(run_dir) or {}
        if "genotype" not in summary:
            raise DcpnasError(f"replica {run_dir} has no finished result (summary.json); rerun the command")
        g = genotype_from_dict(summary["genotype"], str(run_dir / "summary.json"))
        genotypes.append(g)
        alphas.append(final_alphas(run_dir))
        rows.append({"replica": f"r{r}", "seed": summary.get("seed"), "genotype": g.to_darts(),
                     "final": summary.get("final", {})})
    consensus, choices = dist.consensus(genotypes, alphas)
    agreement = dist.agreement(genotypes, choices)
    freq = dist.frequency(genotypes)
    soft = dist.mean_softmax(alphas)
    consensus.save(out / "genotype.json")
    pictures = {}
    for cell in CELL_TYPES:
        draw_cell(consensus, cell, out / f"cell_{cell}.svg")
        marked = [(c_edge, PRIMITIVES.index(c.op)) for c in choices if c.cell == cell
                  for c_edge in [_edge(c)]]
        title = (f"{method}, {cell} cell: {replicas} replicas ({mode}); boxed: consensus; "
                 f"{agreement['majority_choices']}/{agreement['choices']} choices by >= {agreement['threshold']}")
        path = dist.plot_frequency(freq[cell], replicas, out / f"agreement_{cell}.png", title=title,
                                   marked=marked)
        pictures[cell] = str(path)
    record = {"format": "dcpnas-agreement/1", "method": method, "mode": mode, "replicas": replicas,
              "line": dist.agreement_line(agreement), "agreement": agreement,
              "consensus": consensus.to_dict(), "consensus_darts": consensus.to_darts(),
              "choices": [c.as_dict() for c in choices],
              "ops": list(PRIMITIVES), "edges": dist.edge_names(),
              "frequency": {cell: freq[cell].tolist() for cell in CELL_TYPES},
              "mean_softmax": None if soft is None else {c: soft[c].tolist() for c in CELL_TYPES},
              "note": METHOD_NOTES.get(method), "replica_results": rows,
              "files": {"genotype": str(out / "genotype.json"), "pictures": pictures}}
    atomic_write_json(out / "agreement.json", record)
    return record


def _edge(choice) -> int:
    from ..space.cell import edge_index

    return edge_index(choice.node - 2, choice.input)
