"""The steps of a final-training run and the switch between them (docs/METHOD.md#decision-training).

* 1-bit, ``two_step`` (default): **step 1** binary activations with real weights (every
  ``BinaryConv2d`` convolves with ŵ; β takes no part and is frozen), weight decay
  ``optim.weight_decay``; **step 2** binary weights β∘sign(ŵ) starting from step 1's ŵ, weight decay
  ``optim.weight_decay_step2`` (0, as the authors) and peak lr ``optim.lr_scale_step2`` × step 1's
  (1, as the authors; on the Fashion-MNIST preset a quarter of it learned slower).
* 1-bit, one step: binary weights and activations throughout, ``optim.weight_decay``.
* real-valued: one step, ``optim.weight_decay``.

Every step gets a fresh optimizer and cosine schedule: the authors run step 2 as a new job that
loads step 1's checkpoint.

**β at the switch.** β was initialised to mean|ŵ| when the network was built, but step 1 changed ŵ
(and never trained β: it is unused there), so that value is stale. ``reset_beta`` sets
β ← mean|ŵ| per output channel at the start of step 2. This is the right choice: for a fixed sign
pattern, mean|ŵ| is the minimiser of ‖ŵ − β∘sign(ŵ)‖² (XNOR-Net), so the binary weights start as
the closest binary approximation of the weights step 1 learned, and L_R (Eq. 4.23) starts at its
minimum over β. It matters less than it may seem: every binary conv of the 1-bit ops is followed by
BatchNorm, which in training mode cancels a per-channel scale of its input, so β mainly sets the
scale the BN running statistics see (eval mode) and the effective step size of ŵ. The stale value
would also work, but would make eval-mode statistics lag for longer after the switch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..binary import binary_convs
from .config import TrainConfig

__all__ = ["Stage", "plan_stages", "enter_stage"]


@dataclass(frozen=True)
class Stage:
    number: int                        # 1 or 2
    name: str                          # step1 | step2 | binary | real
    binary_weights: bool
    epochs: int
    weight_decay: float
    reset_beta: bool = False           # at the start of this stage
    lr_scale: float = 1.0              # peak lr = TrainConfig.scaled_lr × lr_scale


def plan_stages(cfg: TrainConfig) -> list[Stage]:
    wd1, wd2 = cfg.optim.weight_decay, cfg.optim.weight_decay_step2
    if not cfg.model.binary:
        return [Stage(1, "real", False, cfg.epochs, wd1)]
    if not cfg.two_step:
        return [Stage(1, "binary", True, cfg.epochs, wd1)]
    return [Stage(1, "step1", False, cfg.step1_epochs or cfg.epochs, wd1),
            Stage(2, "step2", True, cfg.epochs, wd2, reset_beta=cfg.reset_beta,
                  lr_scale=cfg.optim.lr_scale_step2)]


def enter_stage(model: nn.Module, stage: Stage, *, fresh: bool) -> None:
    """Put the network in the stage's mode: binary weights on/off, β trainable only when used.

    ``fresh``: the stage starts now (not a resume inside it), so the β reset applies.
    """
    convs = binary_convs(model)
    for conv in convs:
        conv.binary_weights = stage.binary_weights
        conv.beta.requires_grad_(stage.binary_weights)
        if fresh and stage.reset_beta:
            conv.reset_beta()
