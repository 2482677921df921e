"""Optimiser (AdamW or SGD) and the per-step warm-up + cosine learning-rate schedule.

As timm's ``create_optimizer`` (the authors' code, method section 7.5), weight decay is applied only
to weights with more than one dimension: biases, BatchNorm affine parameters, PReLU slopes and the
per-channel β scales are not decayed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

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
    """lr(t) for step t of ``total_steps``: linear warm-up from 0, then cosine from ``base_lr`` to
    ``min_lr`` (reached at the last step). ``step()`` advances and writes lr into every group."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, min_lr: float,
                 total_steps: int, warmup_steps: int = 0):
        self.optimizer = optimizer
        self.base_lr, self.min_lr = float(base_lr), min(float(min_lr), float(base_lr))
        self.total_steps, self.warmup_steps = max(int(total_steps), 1), max(int(warmup_steps), 0)
        self.last_step = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - 1 - self.warmup_steps, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * t))

    @property
    def lr(self) -> float:
        return self.lr_at(self.last_step)

    def _apply(self) -> None:
        lr = self.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lr": self.base_lr, "min_lr": self.min_lr,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict) -> None:
        for key in ("last_step", "total_steps", "warmup_steps"):
            setattr(self, key, int(state[key]))
        self.base_lr, self.min_lr = float(state["base_lr"]), float(state["min_lr"])
        self._apply()

