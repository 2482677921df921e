"""The final-training loss: distillation (−G), label cross-entropy and the reconstruction term.

loss = distill_weight·(−G(student, teacher; T)) + label_weight·CE_ls(student, y) + μ_R·L_R

−G = KL(p_teacher ‖ p_student) is the distillation loss (docs/METHOD.md#decision-g; the authors' final
training uses it alone, with a ResNet-34 teacher and T = 1, docs/METHOD.md#decision-training).
Without a teacher the loss is the label CE with weight 1. L_R is added only while the network
convolves with binary weights: in step 1 β does not take part in the forward pass, so pulling ŵ
towards ±β there would only fight the task loss.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..binary import binary_convs, reconstruction_loss
from ..losses import child_parent_G
from .config import LossConfig

__all__ = ["TrainLoss"]


class TrainLoss:
    """Callable ``loss(logits, y, teacher_logits, model) -> (loss, parts)``.

    ``parts`` holds detached scalars for the log: ``kd`` (−G), ``ce`` and ``rec`` when they are used.
    """

    def __init__(self, cfg: LossConfig, has_teacher: bool):
        self.cfg = cfg
        self.has_teacher = has_teacher
        self.distill_weight = cfg.distill_weight if has_teacher else 0.0
        self.label_weight = cfg.label_weight if has_teacher else 1.0
        if self.distill_weight == 0 and self.label_weight == 0:
            from ..errors import ConfigError

            raise ConfigError("loss.distill_weight and loss.label_weight are both 0: nothing to train on")

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, teacher_logits: Optional[torch.Tensor],
                 model: nn.Module):
        logits = logits.float()
        total = logits.new_zeros(())
        parts = {}
        if self.distill_weight:
            if teacher_logits is None:
                raise ValueError("the distillation loss needs teacher logits")
            kd = -child_parent_G(logits, teacher_logits.float(), self.cfg.temperature)
            total = total + self.distill_weight * kd
            parts["kd"] = kd.detach()
        if self.label_weight:
            ce = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
            total = total + self.label_weight * ce
            parts["ce"] = ce.detach()
        if self.cfg.reconstruction_weight:
            net = getattr(model, "module", model)
            convs = [c for c in binary_convs(net) if c.binary_weights]
            if convs:
                rec = reconstruction_loss(net).to(total)
                total = total + self.cfg.reconstruction_weight * rec
                parts["rec"] = rec.detach()
        return total, parts
