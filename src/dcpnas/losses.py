"""Losses shared by the search and the final training, below both (docs/METHOD.md#decision-g).

G(ŵ, α̂, β) = −KL(p_P ‖ p̂_C) (Eq. 4.30 as reconstructed in docs/METHOD.md#eq-4-30): the Parent's (or a
teacher's) softmax is a detached target, the student's softmax follows it. The search ascends G for
the Child's weights and architecture; the final training descends −G as its distillation loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["at_least_fp32", "child_parent_G", "child_parent_G_per_sample"]


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or float64 if it already is: logits may leave autocast in half precision,
    and the softmax/KL arithmetic wants fp32 (the gradient tests run whole models in float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def child_parent_G_per_sample(child_logits: torch.Tensor, parent_logits: torch.Tensor,
                              temperature: float = 1.0) -> torch.Tensor:
    """Per-sample −KL(softmax(z_P/T) ‖ softmax(z_C/T)); a vector of length B.

    The Parent logits are detached: they are a target, not a path for gradients.
    """
    if child_logits.shape != parent_logits.shape:
        raise ValueError(f"child logits {tuple(child_logits.shape)} and parent logits "
                         f"{tuple(parent_logits.shape)} differ in shape")
    T = float(temperature)
    log_q = F.log_softmax(at_least_fp32(child_logits) / T, dim=1)
    log_p = F.log_softmax(at_least_fp32(parent_logits.detach()) / T, dim=1).to(log_q.dtype)
    p = log_p.exp()
    # Σ p (log q − log p); a p that underflows to 0 contributes 0 (no 0·(−inf)).
    return -(p * (log_p - log_q)).sum(dim=1)


def child_parent_G(child_logits: torch.Tensor, parent_logits: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """G = −KL(softmax(z_P/T) ‖ softmax(z_C/T)), batch mean, Parent detached.

    G ≤ 0 and is maximised by the Child; up to the Parent's entropy (a constant for the Child)
    −G is the soft-target cross-entropy −Σ p log p̂. No T² factor is applied (at T = 1, the
    default, it makes no difference; the curvature products assume this definition).
    """
    return child_parent_G_per_sample(child_logits, parent_logits, temperature).mean()
