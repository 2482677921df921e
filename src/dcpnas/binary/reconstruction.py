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
    # All layers in one flat pass, since a Child has hundreds of them and per-layer ops cost more
    # than the arithmetic: ŵ concatenated in (out, in, kh, kw) order, β_o repeated over its fan-in.
    w = torch.cat([conv.weight.reshape(-1) for conv in convs])
    numel = [conv.weight.numel() for conv in convs]
    out_ch = [conv.out_channels for conv in convs]
    fan_in = torch.tensor([n // o for n, o in zip(numel, out_ch)], device=w.device)
    beta = torch.cat([conv.beta for conv in convs]).to(w.dtype).repeat_interleave(
        fan_in.repeat_interleave(torch.tensor(out_ch, device=w.device)))
    err = (w - beta * hard_sign(w).detach()).square()
    if reduction == "sum":
        return err.sum()
    sizes = torch.tensor(numel, dtype=w.dtype, device=w.device)
    per_element = (1.0 / sizes).repeat_interleave(sizes.long())   # each layer's mean, summed
    return (err * per_element).sum()
