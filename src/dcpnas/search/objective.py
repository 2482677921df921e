"""The DCP-NAS objective terms: G, the Child's weight objective, the Parent tangent, D.

* G(ŵ, α̂, β) = −KL(p_P ‖ p̂_C), the Parent's softmax a detached target (method D.1, Eq. 4.30).
* The Child's weight objective −G + μ·L_R (+ label CE), Eqs. 4.32/4.34 with D.7.
* The Parent's tangent direction g_P = ∂f̃ᴾ/∂α, f̃ᴾ = −CE(Parent logits, y) (D.4, Eq. 4.29),
  from the same forward that gives G its target.
* The discrepancy D(g_C, g_P) between the Child's and the Parent's architecture gradients (D.2,
  Eq. 4.31) and its analytic derivative ∂D/∂g_C, which the curvature product turns into ∇_α̂ D.

Gradient lists ("g_C", "g_P", directions) are lists of tensors shaped like the architecture
parameters, [α_normal, α_reduce]; every reduction runs over all of them together.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..binary.reconstruction import reconstruction_loss

DISTANCES = ("fro", "l1", "cosine")

TensorList = Sequence[torch.Tensor]


def _unwrap(model: nn.Module) -> nn.Module:
    """The supernet inside a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Logits may come out of autocast in half precision; the softmax/KL arithmetic is done in fp32
    # (or float64 when the model is float64, which the gradient tests rely on).
    return t.to(torch.promote_types(t.dtype, torch.float32))


# -- G: shared with the final training, so it lives below both (docs/METHOD.md#decision-g) --------
from ..losses import child_parent_G, child_parent_G_per_sample  # noqa: E402,F401  (re-exported)


def child_objective_per_sample(child_logits: torch.Tensor, parent_logits: torch.Tensor, *,
                               temperature: float = 1.0, label_ce_weight: float = 0.0,
                               labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-sample G̃_b = G_b − label_ce_weight·CE_b: the quantity the Child's α̂ ascends.

    With the default label_ce_weight = 0 this is the per-sample G of ``child_parent_G``; the
    label term is the option of method D.1 (its cross-entropy is always taken at T = 1).
    """
    G = child_parent_G_per_sample(child_logits, parent_logits, temperature)
    if label_ce_weight:
        if labels is None:
            raise ValueError("label_ce_weight > 0 needs labels")
        ce = F.cross_entropy(_at_least_fp32(child_logits), labels, reduction="none")
        G = G - label_ce_weight * ce.to(G.dtype)
    return G


# -- the Child's weight step ----------------------------------------------------------------------
def child_weight_objective(child: nn.Module, child_logits: torch.Tensor,
                           parent_logits: torch.Tensor, *, mu: float, temperature: float = 1.0,
                           label_ce_weight: float = 0.0, labels: Optional[torch.Tensor] = None,
                           reconstruction_reduction: str = "sum"):
    """Loss of the ŵ/β step: −G + μ·L_R (+ label_ce_weight·CE) (Eqs. 4.32, 4.34; method D.7).

    D is deliberately absent: it is used only in the α̂ update (D.7). Returns ``(loss, parts)``,
    ``parts`` = {"G", "L_R", "CE"} as detached scalars (CE only when its weight is non-zero).
    """
    G = child_parent_G(child_logits, parent_logits, temperature)
    L_R = reconstruction_loss(_unwrap(child), reduction=reconstruction_reduction).to(G)
    loss = -G + mu * L_R
    parts = {"G": G.detach(), "L_R": L_R.detach()}
    if label_ce_weight:
        if labels is None:
            raise ValueError("label_ce_weight > 0 needs labels")
        ce = F.cross_entropy(_at_least_fp32(child_logits), labels).to(G.dtype)
        loss = loss + label_ce_weight * ce
        parts["CE"] = ce.detach()
    return loss, parts


# -- the Parent: G's target and the tangent direction from one forward ---------------------------
def parent_forward(parent: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor], *,
                   need_tangent: bool = True, alphas: Optional[TensorList] = None):
    """One Parent forward serving both G's target and the tangent g_P = ∂f̃ᴾ/∂α (Eq. 4.29, D.4).

    f̃ᴾ = −CE(Parent logits, y). The tangent is taken with ``torch.autograd.grad`` w.r.t. α only,
    so no ``.grad`` accumulates on the Parent's weights and autograd skips the weight-gradient
    kernels. The Parent is frozen here; whether it runs in eval mode (running BN statistics, no
    statistics update) or train mode (batch statistics, running statistics updated once) is the
    caller's choice. A DDP wrapper is bypassed (only α-gradients are taken; averaging the
    tangent over ranks is the caller's job).

    alphas: the architecture to evaluate the Parent at (default: its own registered α). Tensors
      that do not require grad are replaced by leaf copies that do.
    Returns ``(logits.detach(), tangent)``; tangent is a list shaped like α, or None when
    ``need_tangent`` is False (then the forward runs under ``no_grad``).
    """
    net = _unwrap(parent)
    if not need_tangent:
        with torch.no_grad():
            logits = net(x) if alphas is None else net(x, alphas=list(alphas))
        return logits.detach(), None
    if y is None:
        raise ValueError("the tangent direction needs labels y")
    if alphas is None:
        alphas = list(net.arch_parameters())
    alphas = [a if a.requires_grad else a.detach().requires_grad_(True) for a in alphas]
    with torch.enable_grad():
        logits = net(x, alphas=alphas)
        f_P = -F.cross_entropy(_at_least_fp32(logits), y)
        tangent = torch.autograd.grad(f_P, alphas)
    return logits.detach(), [t.detach() for t in tangent]


# -- D and ∂D/∂g_C ------------------------------------------------------------------------------
def _check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"unknown discrepancy distance {distance!r}; expected one of {DISTANCES}")


def _dot(a: TensorList, b: TensorList) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _cosine_parts(g_C: TensorList, g_P: TensorList, eps: float):
    """(⟨g_C, g_P⟩, ‖g_C‖, ‖g_P‖, denominator) with the denominator clamped away from 0."""
    dot = _dot(g_C, g_P)
    n_C = _dot(g_C, g_C).sqrt()
    n_P = _dot(g_P, g_P).sqrt()
    return dot, n_C, n_P, (n_C * n_P).clamp_min(eps)


def discrepancy(g_C: TensorList, g_P: TensorList, distance: str = "fro", *,
                eps: float = 1e-12) -> torch.Tensor:
    """D(α̂) between the Child gradient g_C = ∂G/∂α̂ and the Parent tangent g_P (Eq. 4.31, D.2).

    fro: ‖g_C − g_P‖²_F;  l1: Σ|g_C − g_P|;  cosine: 1 − ⟨g_C, g_P⟩/(‖g_C‖‖g_P‖).
    Sums run over all architecture tensors together. Differentiable in g_C (the tests build
    ∇_α̂ D from it with create_graph).
    """
    _check_distance(distance)
    if len(g_C) != len(g_P):
        raise ValueError(f"g_C has {len(g_C)} tensors, g_P has {len(g_P)}")
    if distance == "fro":
        return sum((c - p).pow(2).sum() for c, p in zip(g_C, g_P))
    if distance == "l1":
        return sum((c - p).abs().sum() for c, p in zip(g_C, g_P))
    dot, _, _, denom = _cosine_parts(g_C, g_P, eps)
    return 1.0 - dot / denom


def discrepancy_direction(g_C: TensorList, g_P: TensorList, distance: str = "fro", *,
                          eps: float = 1e-12) -> list[torch.Tensor]:
    """∂D/∂g_C in closed form, so that ∇_α̂ D = H_G · ∂D/∂g_C (chain rule, H_G symmetric).

    fro: 2(g_C − g_P);  l1: sign(g_C − g_P) (0 where equal, as autograd's |·|);
    cosine: with c = ⟨g_C, g_P⟩/(‖g_C‖‖g_P‖),
      ∂(1 − c)/∂g_C = −g_P/(‖g_C‖‖g_P‖) + c·g_C/‖g_C‖²
    (where ‖g_C‖‖g_P‖ < eps the clamped denominator is a constant, as in ``discrepancy``).
    """
    _check_distance(distance)
    if distance == "fro":
        return [2.0 * (c - p) for c, p in zip(g_C, g_P)]
    if distance == "l1":
        return [torch.sign(c - p) for c, p in zip(g_C, g_P)]
    dot, n_C, n_P, denom = _cosine_parts(g_C, g_P, eps)
    cos = dot / denom
    # Where the denominator is clamped it is a constant, and only the −g_P/denom term remains.
    scale = torch.where(n_C * n_P > eps, cos / n_C.pow(2).clamp_min(eps), torch.zeros_like(cos))
    return [-p / denom + scale * c for c, p in zip(g_C, g_P)]
