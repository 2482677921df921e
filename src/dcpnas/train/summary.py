"""The end of a run: ``summary.json``, the training curves, and the console lines of epochs.

``summary.json`` (format ``dcpnas-train-summary/1``): dataset, spec and genotype, final and best
test accuracy, per-step accuracy and time, total and mean epoch time, the teacher's accuracy, and
the cost profile (``dcpnas.metrics.profile``: MBits, FLOPs, BOPs, OPs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch.nn as nn

from ..utils.io import atomic_write_json
from ..utils.logging import console
from ..utils.progress import format_duration
from .checkpoint import CHECKPOINT
from .config import TrainConfig
from .curves import plot_curves
from .spec import ModelSpec
from .stages import Stage

__all__ = ["final_metrics", "console_epoch", "write_summary", "profile_totals"]


def profile_totals(model: nn.Module, spec: ModelSpec) -> Optional[dict]:
    """The cost totals of ``dcpnas.metrics.profile`` (None when that module is unavailable)."""
    try:
        from ..metrics.profile import profile_model
    except ImportError:
        return None
    return profile_model(model, spec.input_shape).totals()


def final_metrics(history: list) -> dict:
    evaluated = [r for r in history if "test_top1" in r]
    if not evaluated:
        return {}
    r = evaluated[-1]
    return {"top1": r["test_top1"], "top5": r["test_top5"], "loss": r["test_loss"]}


def console_epoch(role: str, stage: Stage, r: dict) -> None:
    test = (f" test top-1 {r['test_top1']:.2f}% top-5 {r['test_top5']:.2f}%" if "test_top1" in r else "")
    console(f"{role} {stage.name} epoch {r['epoch']}/{stage.epochs}: loss {r['train_loss']:.4f} "
            f"train top-1 {r['train_top1']:.2f}%{test} lr {r['lr']:.3g} "
            f"({format_duration(r['epoch_time'])})")


def write_summary(out: Path, cfg: TrainConfig, spec: ModelSpec, model: nn.Module, history: list,
                   stages: list[Stage], teacher_metrics: Optional[dict], role: str, run_time: float) -> None:
    epoch_times = [r["epoch_time"] for r in history]
    per_stage = []
    for s in stages:
        rows = [r for r in history if r["stage"] == s.number]
        evaluated = [r for r in rows if "test_top1" in r]
        per_stage.append({"name": s.name, "epochs": s.epochs, "binary_weights": s.binary_weights,
                          "weight_decay": s.weight_decay,
                          "top1": evaluated[-1]["test_top1"] if evaluated else None,
                          "time_s": sum(r["epoch_time"] for r in rows)})
    teacher = None
    if cfg.teacher.kind != "none":
        teacher = {"kind": cfg.teacher.kind, "test": teacher_metrics}
        teacher_summary = out / "teacher" / "summary.json"
        if cfg.teacher.kind == "self" and teacher_summary.exists():
            teacher["time_s"] = json.loads(teacher_summary.read_text()).get("time_s")
    summary = {
        "format": "dcpnas-train-summary/1", "role": role, "dataset": spec.dataset,
        "binary": spec.binary, "genotype": spec.genotype, "spec": spec.to_dict(),
        "final": final_metrics(history),
        "best_top1": max((r["test_top1"] for r in history if "test_top1" in r), default=None),
        "steps": per_stage, "epochs": len(history),
        "time_s": sum(epoch_times), "mean_epoch_time_s": sum(epoch_times) / max(len(epoch_times), 1),
        "last_process_time_s": run_time, "teacher": teacher,
        "profile": profile_totals(model, spec),
        "files": {"model": "model.pt", "checkpoint": CHECKPOINT, "log": "log.jsonl"},
    }
    curves = plot_curves(history, out / "curves",
                         f"{role}: {spec.dataset} C{spec.C} L{spec.layers} "
                         f"{'1-bit' if spec.binary else 'real'}")
    summary["files"]["curves"] = curves.name
    atomic_write_json(out / "summary.json", summary)
    final = summary["final"]
    console(f"{role}: done, test top-1 {final.get('top1', float('nan')):.2f}% top-5 "
            f"{final.get('top5', float('nan')):.2f}% in {format_duration(summary['time_s'])}; {out / 'model.pt'}")

