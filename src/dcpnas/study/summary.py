"""What a study reports: per entry the mean ± std over seeds, paired differences to the reference,
the null-perturbation noise floor, and the found genotypes as distributions (``distribution.py``), as
``summary.json``, ``summary.md``, ``summary.png`` and ``summary-genotypes.png``.

Per trial: the derived 1-bit network's test top-1 (after ``dcpnas train``), the Child supernet's
final search-val accuracy (the Parent's for ``darts``), MBits and OPs of the trained network,
search wall time, and the final α. Per entry and seed, paired with the reference on the same seed:
Δtop-1, Δ(search-val accuracy) and max|Δα| (the raw architecture parameters, both cell types).
The ``null`` entry's distances to the reference are the floor a difference has to clear.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Optional, Sequence

from ..search.results import final_alphas
from ..utils.provenance import code_fingerprint
from ..utils.rundir import MARKER
from ..utils.io import atomic_write_json, atomic_write_text
from ..utils.logging import console
from .distribution import format_distribution, genotype_distribution, plot_distribution, save_consensus
from .sets import NULL, REFERENCE, get_study_set

#: Methods whose final α̂ comes from the same Parent/Child loop (max|Δα| between them means something).
ALPHA_COMPARABLE = {"dcpnas", "cpnas"}

__all__ = ["trial_result", "aggregate", "format_markdown", "write_summary"]


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _flat(alphas) -> list[float]:
    out: list[float] = []

    def walk(x):
        if isinstance(x, list):
            for v in x:
                walk(v)
        else:
            out.append(float(x))
    walk(alphas)
    return out


def trial_result(trial) -> dict:
    """The figures of one trial (missing ones are None)."""
    s = _read_json(trial.search_dir / "summary.json") or {}
    t = _read_json(trial.train_dir / "summary.json") or {}
    final = s.get("final", {})
    acc = final.get("child_acc", final.get("parent_acc"))
    prof = t.get("profile") or {}
    return {"label": trial.entry.label, "method": trial.entry.method, "seed": trial.seed,
            "search_done": bool(s), "train_done": bool(t),
            "test_top1": (t.get("final") or {}).get("top1"),
            "search_val_acc": acc, "parent_val_acc": final.get("parent_acc"),
            "mbits": prof.get("mbits"), "ops": prof.get("ops"),
            "search_time_s": s.get("wall_time_s"), "train_time_s": t.get("time_s"),
            "genotype": s.get("genotype_darts"),
            "code": _codes(trial),
            "alphas": final_alphas(trial.search_dir) if s else None}


def _codes(trial) -> list[str]:
    """The code fingerprints in the trial's run markers (search, train), as far as they exist;
    "unrecorded" for a marker written before markers held one."""
    out = []
    for d in (trial.search_dir, trial.train_dir):
        marker = _read_json(d / MARKER)
        if not isinstance(marker, dict):
            continue
        code = str(marker.get("code") or "unrecorded")  # a run made before markers held it
        if code not in out:
            out.append(code)
    return out


def code_versions(results) -> dict[str, list[str]]:
    """fingerprint → ["label/seed-s", ...] over the trials' runs (a trial may appear twice)."""
    versions: dict[str, list[str]] = {}
    for r in results:
        for code in r.get("code") or []:
            versions.setdefault(code, []).append(f"{r['label']}/seed-{r['seed']}")
    return versions


def _stats(values: Sequence[Optional[float]]) -> dict:
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "n": len(v)}


def _max_abs_diff(a, b) -> Optional[float]:
    if a is None or b is None:
        return None
    fa, fb = _flat(a), _flat(b)
    if len(fa) != len(fb) or not fa:
        return None
    return max(abs(x - y) for x, y in zip(fa, fb))


def aggregate(results: list[dict], labels: Sequence[str]) -> dict:
    """Per-label statistics and the paired differences to the reference (same seed)."""
    by = {(r["label"], r["seed"]): r for r in results}
    seeds = sorted({r["seed"] for r in results})
    rows = {}
    for label in labels:
        mine = [by[(label, s)] for s in seeds if (label, s) in by]
        paired = {"d_top1": [], "d_val_acc": [], "max_d_alpha": []}
        for r in mine:
            ref = by.get((REFERENCE, r["seed"]))
            if ref is None or label == REFERENCE:
                continue
            for key, field in (("d_top1", "test_top1"), ("d_val_acc", "search_val_acc")):
                if r[field] is not None and ref[field] is not None:
                    paired[key].append(r[field] - ref[field])
            # Only α of the same loop compare: sampling methods report one-hot codes, darts and
            # bnas the α of a single supernet trained differently.
            same_loop = {r.get("method"), ref.get("method")} <= ALPHA_COMPARABLE
            d = _max_abs_diff(r["alphas"], ref["alphas"]) if same_loop else None
            if d is not None:
                paired["max_d_alpha"].append(d)
        rows[label] = {
            "seeds": [r["seed"] for r in mine],
            "test_top1": _stats([r["test_top1"] for r in mine]),
            "test_top1_values": [r["test_top1"] for r in mine],
            "search_val_acc": _stats([r["search_val_acc"] for r in mine]),
            "mbits": _stats([r["mbits"] for r in mine]),
            "ops": _stats([r["ops"] for r in mine]),
            "search_time_s": _stats([r["search_time_s"] for r in mine]),
            "paired": {k: {**_stats(v), "values": v} for k, v in paired.items()},
        }
    floor = rows.get(NULL, {}).get("paired")
    return {"rows": rows, "seeds": seeds,
            "noise_floor": None if floor is None else {
                "max_d_alpha": floor["max_d_alpha"]["mean"],
                "abs_d_top1": _stats([abs(v) for v in floor["d_top1"]["values"]])["mean"],
                "abs_d_val_acc": _stats([abs(v) for v in floor["d_val_acc"]["values"]])["mean"]}}


def _pm(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    if s.get("mean") is None:
        return "—"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def _g(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.2g}"


def _alpha(d: Optional[float], floor: dict) -> str:
    f = floor.get("max_d_alpha") if floor else None
    if d is None:
        return "—"
    return f"{d:.2g} ({d / f:.1f}× floor)" if f else f"{d:.2g}"


def format_markdown(agg: dict, set_caption: str, papers: dict, command: str) -> str:
    floor = agg.get("noise_floor") or {}
    lines = [f"{set_caption}", "",
             f"Seeds {agg['seeds']}; mean ± std over seeds; Δ = paired difference to `{REFERENCE}` "
             f"on the same seed. Command: `{command}`", "",
             "| config | book | 1-bit test top-1 % | Δ top-1 | Child search-val acc | Δ acc | "
             "max\\|Δα\\| | MBits | MOPs | search s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in agg["rows"].items():
        p = r["paired"]
        lines.append(
            f"| {label} | {papers.get(label, '')} | {_pm(r['test_top1'])} | "
            f"{_pm(p['d_top1']) if label != REFERENCE else ''} | {_pm(r['search_val_acc'], 1, 3)} | "
            f"{_pm(p['d_val_acc'], 1, 3) if label != REFERENCE else ''} | "
            f"{_alpha(p['max_d_alpha']['mean'], floor) if label != REFERENCE else ''} | "
            f"{_pm(r['mbits'], 1, 3)} | {_pm(r['ops'], 1e-6, 2)} | {_pm(r['search_time_s'], 1, 0)} |")
    lines += _by_seed(agg)
    if floor:
        lines += ["", f"Noise floor (`{NULL}`: `{REFERENCE}` with α₀ perturbed by 1e-9, same seeds): "
                      f"max|Δα| {_g(floor['max_d_alpha'])}, |Δ top-1| {_g(floor['abs_d_top1'])} "
                      f"points, |Δ acc| {_g(floor['abs_d_val_acc'])}."]
    return "\n".join(lines) + "\n"


def _by_seed(agg: dict) -> list[str]:
    """The 1-bit test top-1 of every trial, a column per seed, with its paired difference to the
    reference: what the mean ± std above summarise (empty for a searches-only study)."""
    rows = {label: dict(zip(r["seeds"], r["test_top1_values"])) for label, r in agg["rows"].items()}
    if not any(v is not None for row in rows.values() for v in row.values()):
        return []
    ref = rows.get(REFERENCE, {})
    lines = ["", f"1-bit test top-1 % by seed (in brackets: the paired difference to `{REFERENCE}`):", "",
             "| config | " + " | ".join(f"seed {s}" for s in agg["seeds"]) + " |",
             "|---|" + "---:|" * len(agg["seeds"])]
    for label, row in rows.items():
        cells = []
        for seed in agg["seeds"]:
            v, r = row.get(seed), ref.get(seed)
            cell = "—" if v is None else f"{v:.2f}"
            if v is not None and r is not None and label != REFERENCE:
                cell += f" ({v - r:+.2f})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def plot_summary(agg: dict, results: list[dict], path: Path) -> Optional[Path]:
    """Two panels: test top-1 per seed with mean ± std; max|Δα| to the reference against the floor."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = list(agg["rows"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, label in enumerate(labels):
        vals = [r["test_top1"] for r in results if r["label"] == label and r["test_top1"] is not None]
        a1.scatter([i] * len(vals), vals, s=18, color="#1f77b4", alpha=0.7)
        st = agg["rows"][label]["test_top1"]
        if st["mean"] is not None:
            a1.errorbar([i + 0.15], [st["mean"]], yerr=[st["std"]], fmt="s", color="#d62728",
                        capsize=3, markersize=5)
    a1.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    a1.set_ylabel("1-bit test top-1 (%)")
    a1.set_title("derived 1-bit network, per seed (dots) and mean ± std")
    others = [lab for lab in labels if lab != REFERENCE
              and agg["rows"][lab]["paired"]["max_d_alpha"]["values"]]  # comparable α only
    for i, label in enumerate(others):
        vals = agg["rows"][label]["paired"]["max_d_alpha"]["values"]
        a2.scatter([i] * len(vals), vals, s=18, color="#2ca02c" if label != NULL else "#7f7f7f")
    floor = (agg.get("noise_floor") or {}).get("max_d_alpha")
    if floor:
        a2.axhline(floor, color="#7f7f7f", ls="--", lw=1, label=f"noise floor {floor:.2g}")
        a2.axhline(5 * floor, color="#7f7f7f", ls=":", lw=1, label="5 × floor")
        a2.legend(fontsize=8)
    a2.set_xticks(range(len(others)), others, rotation=30, ha="right")
    a2.set_yscale("log")
    a2.set_ylabel(f"max|Δα| to {REFERENCE}, same seed")
    a2.set_title("how far each configuration moves α")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def study_command(cfg) -> str:
    """The command that reproduces the study's results (not its --jobs or --out, which do not change
    them); a searches-only study names no train preset."""
    searches_only = not cfg.train
    parts = [f"dcpnas study {cfg.set_name} --seeds {cfg.seeds}"]
    if cfg.first_seed:
        parts.append(f"--first-seed {cfg.first_seed}")
    parts.append(f"--search-preset {cfg.search_preset}")
    if searches_only:
        if not get_study_set(cfg.set_name).search_only:
            parts.append("--search-only")
    else:
        parts.append(f"--train-preset {cfg.train_preset}")
    if not cfg.noise_floor:
        parts.append("--no-noise-floor")
    if cfg.search_overrides:
        parts.append("--search-set " + " ".join(cfg.search_overrides))
    if cfg.train_overrides and not searches_only:
        parts.append("--train-set " + " ".join(cfg.train_overrides))
    return " ".join(parts)


def write_summary(cfg, out: Path, trials, name: str) -> dict:
    results = [trial_result(t) for t in trials]
    labels = list(dict.fromkeys(t.entry.label for t in trials))
    agg = aggregate(results, labels)
    caption = get_study_set(cfg.set_name).caption
    papers = {t.entry.label: t.entry.paper for t in trials}
    md = format_markdown(agg, caption, papers, study_command(cfg))
    view = genotype_distribution(results, labels)
    if any(row["n"] for row in view["rows"].values()):   # not for a set of given cells only
        md += "\n" + format_distribution(view)
    versions = code_versions(results)
    if len(versions) > 1:  # finished trials are reused as they are: say when code changed between them
        current = code_fingerprint()
        parts = [f"{code}{' (this code)' if code == current else ''}: {', '.join(runs)}"
                 for code, runs in versions.items()]
        note = (f"**The trials were run by {len(versions)} versions of the code** "
                f"(source fingerprints; delete a trial's folder to re-run it): " + "; ".join(parts))
        md = md.rstrip("\n") + "\n\n" + note + "\n"
    summary = {"format": "dcpnas-study-summary/1", "set": cfg.set_name, "caption": caption,
               **agg, "distribution": view, "code_versions": versions,
               "trials": [{k: v for k, v in r.items() if k != "alphas"} for r in results]}
    stem = f"summary-{name}"
    atomic_write_json(out / f"{stem}.json", summary)
    atomic_write_text(out / f"{stem}.md", md)
    png = plot_summary(agg, results, out / f"{stem}.png")
    cells = plot_distribution(view, out / f"{stem}-genotypes.png")
    summary["files"] = {"markdown": f"{stem}.md", "plot": png.name if png else None,
                        "genotypes_plot": cells.name if cells else None,
                        "consensus": save_consensus(view, out, stem)}
    console(md)
    return summary
