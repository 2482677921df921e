"""Weight reconstruction error L_R(ŵ, β) = ‖ŵ − β∘b_ŵ‖² (Eq. 4.23, following PCNN)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import binary_convs
from .quantizers import hard_sign

REDUCTIONS = ("sum", "mean")


def reconstruction_loss(module: nn.Module, reduction: str = "sum") -> torch.Tensor:
    """L_R summed over every BinaryConv2d of ``module``.

    b_ŵ = sign(ŵ) is treated as a constant (Eq. 4.34, docs/METHOD.md#eq-4-34), so
    ∂L_R/∂ŵ = 2(ŵ − β∘b_ŵ) and ∂L_R/∂β = −2 Σ (ŵ − β∘b_ŵ)∘b_ŵ per output channel.
    ``reduction="mean"`` averages each layer's error over its weights before summing over layers,
    which keeps the term's scale independent of the network width.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    convs = binary_convs(module)
    if not convs:
        return torch.zeros(())
    total = None
    for conv in convs:
        w = conv.weight
        residual = w - conv.beta.view(-1, 1, 1, 1) * hard_sign(w).detach()
        err = residual.pow(2)
        err = err.sum() if reduction == "sum" else err.mean()
        total = err if total is None else total + err
    return total
