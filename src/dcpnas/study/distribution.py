"""The distribution view of a study (docs/METHOD.md#consensus): per configuration, the genotypes its
seeds found as edge × op counts, their consensus and agreement, and between each configuration and the
reference the total-variation distance of the two genotype sets with its permutation-test p-value.

Needs no training: the genotypes are the searches' results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..space import distribution as dist
from ..space.genotype import CELL_TYPES, parse_genotype_string
from ..space.primitives import NONE_INDEX, PRIMITIVES
from .sets import REFERENCE

__all__ = ["genotype_distribution", "format_distribution", "plot_distribution", "save_consensus"]

N_PERM = 9999


def _genotypes(results: Sequence[dict], label: str):
    rows = [r for r in results if r["label"] == label and r.get("genotype")]
    return ([parse_genotype_string(r["genotype"]) for r in rows], [r.get("alphas") for r in rows],
            [r["seed"] for r in rows])


def genotype_distribution(results: Sequence[dict], labels: Sequence[str], n_perm: int = N_PERM) -> dict:
    """Per label: seeds, edge × op counts per cell type, consensus, agreement, and (labels other than
    the reference) the distance to the reference's set with its permutation test."""
    rows: dict[str, dict] = {}
    sets = {label: _genotypes(results, label) for label in labels}
    ref, _, ref_seeds = sets.get(REFERENCE, ([], [], []))
    ref_by_seed = dict(zip(ref_seeds, ref))
    for label in labels:
        gs, alphas, seeds = sets[label]
        if not gs:
            rows[label] = {"seeds": [], "n": 0}
            continue
        consensus, choices = dist.consensus(gs, alphas)
        freq = dist.frequency(gs)
        test = paired = None
        if label != REFERENCE and ref:
            test = dist.permutation_test(gs, ref, n_perm=n_perm)
            # A study's seed fixes data order and α₀ for every configuration: pair them by seed.
            common = [(g, ref_by_seed[s]) for g, s in zip(gs, seeds) if s in ref_by_seed]
            if common:
                paired = {**dist.paired_test([g for g, _ in common], [r for _, r in common], n_perm=n_perm),
                          "seeds": [s for s in seeds if s in ref_by_seed]}
        rows[label] = {"seeds": seeds, "n": len(gs), "agreement": dist.agreement(gs, choices),
                       "consensus": consensus.to_darts(),
                       "choices": [c.as_dict() for c in choices],
                       "frequency": {c: freq[c].tolist() for c in CELL_TYPES},
                       "vs_reference": test, "paired_with_reference": paired}
    return {"reference": REFERENCE, "ops": list(PRIMITIVES), "edges": dist.edge_names(),
            "n_perm": n_perm, "rows": rows}


def _op_totals(row: dict, cell: str) -> list[int]:
    return [sum(r[o] for r in row["frequency"][cell]) for o in range(len(PRIMITIVES)) if o != NONE_INDEX]


def format_distribution(view: dict) -> str:
    """The markdown section: agreement and distance table, op totals per cell, the consensus cells."""
    ops = [p for k, p in enumerate(PRIMITIVES) if k != NONE_INDEX]
    lines = ["### What the searches found, as distributions", "",
             f"Per configuration over its seeds: *majority* = consensus choices made by more than half "
             f"of the seeds (of 16); *pairwise* = mean share of genes two seeds' cells have in common; "
             f"*d* = mean total-variation distance between the per-node choice distributions of the "
             f"configuration and `{view['reference']}` (0 same, 1 disjoint), *p* its permutation-test "
             f"p-value (labels shuffled over the pooled seeds; *p min* the smallest p the test can "
             f"give); *same seed* = mean share of genes the configuration's cell and "
             f"`{view['reference']}`'s have in common on one seed, *paired p* the p-value of d when "
             f"labels are swapped only within a seed (*p min* likewise). docs/METHOD.md#consensus.", "",
             f"| config | seeds | majority | pairwise | d to `{view['reference']}` | p | p min | same seed "
             f"| paired p | p min |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, row in view["rows"].items():
        if not row["n"]:
            lines.append(f"| {label} | 0 | — | — | — | — | — | — | — | — |")
            continue
        a, t, pt = row["agreement"], row["vs_reference"], row.get("paired_with_reference")
        pair = "—" if a["pairwise"] is None else f"{a['pairwise']:.2f}"
        test = ["", "", ""] if t is None else [f"{t['distance']:.3f}", f"{t['p_value']:.3g}",
                                              f"{t['p_min']:.2g}"]
        test += (["", "", ""] if pt is None else
                 [f"{pt['shared']:.2f}", f"{pt['p_value']:.3g}", f"{pt['p_min']:.2g}"])
        if t is not None and pt is None:
            test[3:] = ["—", "—", "—"]          # no seed in common with the reference
        lines.append(f"| {label} | {row['n']} | {a['majority_choices']}/{a['choices']} (>= "
                     f"{a['threshold']}) | {pair} | " + " | ".join(test) + " |")
    for cell in CELL_TYPES:
        lines += ["", f"Ops chosen in the {cell} cell, summed over edges and seeds (8 per seed):", "",
                  "| config | " + " | ".join(ops) + " |", "|---|" + "---:|" * len(ops)]
        for label, row in view["rows"].items():
            if row["n"]:
                lines.append(f"| {label} | " + " | ".join(str(v) for v in _op_totals(row, cell)) + " |")
    lines += ["", "Consensus cells:", ""]
    lines += [f"* `{label}`: `{row['consensus']}`" for label, row in view["rows"].items() if row["n"]]
    return "\n".join(lines) + "\n"


def plot_distribution(view: dict, path: Path) -> Optional[Path]:
    """One row per configuration, one column per cell type: the edge × op counts over its seeds,
    the consensus boxed; the title gives the agreement and the distance to the reference."""
    import numpy as np
    from matplotlib.figure import Figure

    from ..space.cell import edge_index

    rows = [(label, row) for label, row in view["rows"].items() if row["n"]]
    if not rows:
        return None
    fig = Figure(figsize=(11, 5.6 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (label, row), pair in zip(rows, axes):
        a, t = row["agreement"], row["vs_reference"]
        head = f"{label}: {row['n']} seeds, {a['majority_choices']}/16 by majority"
        if t is not None:
            head += f", d={t['distance']:.2f} p={t['p_value']:.2g}"
        for cell, ax in zip(CELL_TYPES, pair):
            marked = [(edge_index(c["node"] - 2, c["input"]), PRIMITIVES.index(c["op"]))
                      for c in row["choices"] if c["cell"] == cell]
            dist.plot_frequency(np.array(row["frequency"][cell]), row["n"], path,
                                title=f"{head} ({cell})", marked=marked, ax=ax)
    return dist.save_png(fig, path, dpi=80)


def save_consensus(view: dict, out: Path, stem: str) -> dict[str, str]:
    """Each configuration's consensus as a genotype file ``<stem>-consensus-<label>.json`` (what
    ``dcpnas train -g`` takes); returns label -> file name."""
    files = {}
    for label, row in view["rows"].items():
        if row["n"]:
            name = f"{stem}-consensus-{label}.json"
            parse_genotype_string(row["consensus"]).save(Path(out) / name)
            files[label] = name
    return files
