"""Optimiser (AdamW or SGD) and the per-step warm-up + cosine learning-rate schedule.

As timm's ``create_optimizer`` (the authors' code, docs/METHOD.md#decision-training), weight decay is applied only
to weights with more than one dimension: biases, BatchNorm affine parameters, PReLU slopes and the
per-channel β scales are not decayed.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.optim import lr_scheduler

from .config import OptimConfig

__all__ = ["build_optimizer", "CosineSchedule", "param_groups"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into a decayed (ndim > 1) and an undecayed group."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float, weight_decay: float
                    ) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=cfg.eps)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


class CosineSchedule:
    """Per-step linear warm-up from base_lr/(warmup+1), then cosine from ``base_lr`` to ``min_lr``,
    reached at the last of ``total_steps``; torch's ``LinearLR`` → ``CosineAnnealingLR`` in a
    ``SequentialLR``. ``step()`` advances (and stops at the last step); ``lr`` is the current rate."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, min_lr: float,
                 total_steps: int, warmup_steps: int = 0):
        self.optimizer = optimizer
        self.total_steps, warmup = max(int(total_steps), 1), max(int(warmup_steps), 0)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = float(base_lr)
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.total_steps - 1 - warmup, 1),
                                                eta_min=min(float(min_lr), float(base_lr)))
        self.scheduler = cosine if not warmup else lr_scheduler.SequentialLR(
            optimizer, [lr_scheduler.LinearLR(optimizer, 1 / (warmup + 1), 1.0, total_iters=warmup), cosine],
            milestones=[warmup])

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self) -> None:
        # Past its T_max a cosine rises again; the schedule ends at min_lr instead.
        if self.scheduler.last_epoch < self.total_steps - 1:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
            group["lr"] = lr
