"""What a search leaves behind besides its checkpoint: α statistics, plots, the summary.

* ``alpha_entropy``: mean entropy of softmax(α) over the edges (a sharpening search lowers it).
* ``plot_alphas``: the softmax weight of every op, summed over the 14 edges, per epoch and cell
  type, as a PNG.
* ``summary`` / ``format_summary``: the run's result (genotype, accuracies, time, search cost,
  profile of the derived network when ``dcpnas.metrics`` is available).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from ...space import PRIMITIVES
from ...utils.io import atomic_write_bytes

__all__ = ["diagnostics_summary", "alpha_entropy", "alpha_weights", "plot_alphas", "profile_summary", "format_summary",
           "tensorboard_writer"]

CELLS = ("normal", "reduce")
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def alpha_entropy(alphas: Sequence[torch.Tensor]) -> float:
    """Mean over cell types and edges of the entropy (nats) of softmax(α) of an edge."""
    values = []
    for a in alphas:
        p = torch.softmax(a.detach().double().cpu(), dim=-1)
        values.append(-(p * p.clamp_min(1e-300).log()).sum(dim=-1).mean())
    return float(torch.stack(values).mean())


def alpha_weights(alphas: Sequence[torch.Tensor]) -> list[list[float]]:
    """Per cell type, the softmax weight of each op summed over the edges (lists of 8 floats)."""
    return [torch.softmax(a.detach().double().cpu(), dim=-1).sum(dim=0).tolist() for a in alphas]


# -- the α plot ---------------------------------------------------------------------------------------
def _series(history: Sequence[dict]) -> tuple[list[int], list[list[list[float]]]]:
    """(epochs, per cell per op the weight series) from history records with ``alpha_weights``."""
    rows = [(h["epoch"], h["alpha_weights"]) for h in history if "alpha_weights" in h]
    epochs = [e for e, _ in rows]
    series = [[[w[c][m] for _, w in rows] for m in range(len(PRIMITIVES))] for c in range(len(CELLS))]
    return epochs, series


def plot_alphas(history: Sequence[dict], out_stem: str | Path) -> Optional[Path]:
    """Plot the α trajectory to ``out_stem`` + ``.png``; None when the history has no α records."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs, series = _series(history)
    if not epochs:
        return None
    fig = Figure(figsize=(11, 4))  # no pyplot: no global backend or figure state is touched
    axes = fig.subplots(1, 2, sharey=True)
    for c, ax in enumerate(axes):
        for m, name in enumerate(PRIMITIVES):
            ax.plot(epochs, series[c][m], label=name, color=COLORS[m], marker=".")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{CELLS[c]} cell")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Σ over edges of softmax(α)")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(Path(out_stem).with_suffix(".png"), buf.getvalue())


# -- the summary ----------------------------------------------------------------------------------------
def profile_summary(genotype, dataset: str) -> Optional[dict]:
    """Cost totals of the derived 1-bit network (size L on ImageNet, XS otherwise), if profilable."""
    try:
        from ...metrics import profile_genotype
    except ImportError:
        return None
    size = "L" if dataset == "imagenet" else "XS"
    try:
        prof = profile_genotype(genotype, size=size, dataset=dataset)
    except Exception:  # a profile is a courtesy; an unusual dataset must not fail the search
        return None
    return {"size": size, "dataset": dataset, **prof.totals()}


#: What shows whether the method acts (docs/METHOD.md): ρ and cos of the Child's α̂-step (L), the
#: backtrack / Adam-step ratios and coefficients (O), G's share of the weight update (R), the
#: teacher's and the Parent's search-val accuracy (T).
DIAGNOSTICS = ("rho", "cos_step_gC", "G_share", "child_backtrack_ratio", "child_decoupled_coef",
               "parent_backtrack_ratio", "parent_decoupled_coef", "teacher_acc", "parent_acc",
               "child_acc")


def diagnostics_summary(history: Sequence[dict]) -> dict:
    """Per diagnostic: its value in the first epoch that has it ("early"), the last one, and the
    mean over epochs."""
    out = {}
    for key in DIAGNOSTICS:
        vals = [h[key] for h in history if isinstance(h.get(key), float) and math.isfinite(h[key])]
        if vals:
            out[key] = {"early": vals[0], "last": vals[-1], "mean": sum(vals) / len(vals)}
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def format_summary(summary: dict) -> str:
    """The summary as a few human-readable lines (printed at the end of a run)."""
    cost = summary.get("search_cost", {})
    lines = [f"search finished: method {summary['method']}, {summary['epochs']} epochs, "
             f"{summary['wall_time_s']:.1f} s wall time, "
             f"search cost {cost.get('hours', 0):.4f} {cost.get('unit', 'device-hours')}"]
    final = summary.get("final", {})
    if final:
        lines.append("final accuracy on search-val: " + ", ".join(f"{k} {_fmt(v)}" for k, v in final.items()))
    lines.append(f"genotype: {summary['genotype_darts']}")
    prof = summary.get("profile")
    if prof:
        lines.append(f"derived 1-bit network ({prof['size']}, {prof['dataset']}): "
                     f"{prof['params'] / 1e6:.3f} M params, {prof['mbits']:.3f} MBits, "
                     f"{prof['ops'] / 1e6:.2f} M OPs")
    lines.append(f"outputs in {summary['out_dir']}")
    return "\n".join(lines)


def tensorboard_writer(out_dir: str | Path, enabled: bool):
    """A SummaryWriter in ``out_dir/tb`` when enabled and tensorboard imports; otherwise None."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # ImportError, or tensorboard present but broken: logs are optional
        return None
    return SummaryWriter(str(Path(out_dir) / "tb"))
