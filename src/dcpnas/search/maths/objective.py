"""The DCP-NAS objective terms: G, the Child's weight objective, the Parent tangent, D.

* G(ŵ, α̂, β) = −KL(p_P ‖ p̂_C), the Parent's softmax a detached target (docs/METHOD.md#eq-4-30).
* The Child's weight objective −G + μ·L_R (+ label CE), Eqs. 4.32/4.34 (docs/METHOD.md#decision-r).
* The Parent's tangent direction g_P = ∂f̃ᴾ/∂α, f̃ᴾ = −CE(Parent logits, y) (docs/METHOD.md#eq-4-29),
  from the same forward that gives G its target.
* The discrepancy D(g_C, g_P) between the Child's and the Parent's architecture gradients (Decision D,
  Eq. 4.31) and its analytic derivative ∂D/∂g_C, which the curvature product turns into ∇_α̂ D.

Gradient lists ("g_C", "g_P", directions) are lists of tensors shaped like the architecture
parameters, [α_normal, α_reduce]; every reduction runs over all of them together.
"""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...binary.reconstruction import reconstruction_loss
from .curvature import frozen_bn_statistics

TensorList = Sequence[torch.Tensor]


def _unwrap(model: nn.Module) -> nn.Module:
    """The supernet inside a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Logits may come out of autocast in half precision; the softmax/KL arithmetic is done in fp32
    # (or float64 when the model is float64, which the gradient tests rely on).
    return t.to(torch.promote_types(t.dtype, torch.float32))


# -- G: shared with the final training, so it lives below both (docs/METHOD.md#decision-g) --------
from ...losses import child_parent_G, child_parent_G_per_sample  # noqa: E402,F401  (re-exported)


def child_objective_per_sample(child_logits: torch.Tensor, parent_logits: torch.Tensor, *,
                               temperature: float = 1.0, label_ce_weight: float = 0.0,
                               labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-sample G̃_b = G_b − label_ce_weight·CE_b: the quantity the Child's α̂ ascends.

    With the default label_ce_weight = 0 this is the per-sample G of ``child_parent_G``; the
    label term is the option of docs/METHOD.md#decision-g (its cross-entropy is always taken at T = 1).
    """
    G = child_parent_G_per_sample(child_logits, parent_logits, temperature)
    if label_ce_weight:
        if labels is None:
            raise ValueError("label_ce_weight > 0 needs labels")
        ce = F.cross_entropy(_at_least_fp32(child_logits), labels, reduction="none")
        G = G - label_ce_weight * ce.to(G.dtype)
    return G


# -- the Child's weight step ----------------------------------------------------------------------
def child_weight_terms(child: nn.Module, child_logits: torch.Tensor, parent_logits: torch.Tensor,
                       *, mu: float, temperature: float = 1.0, label_ce_weight: float = 0.0,
                       labels: Optional[torch.Tensor] = None,
                       reconstruction_reduction: str = "sum"):
    """The two terms of the ŵ/β step, kept apart so their gradients can be balanced.

    Returns ``(distill, reconstruction, parts)``: distill = −G (+ label_ce_weight·CE), attached;
    reconstruction = μ·L_R, attached (Eqs. 4.23, 4.32, 4.34); ``parts`` = {"G", "L_R", "CE"} as
    detached scalars (CE only when its weight is non-zero). D is deliberately absent: it acts
    on α̂ only (docs/METHOD.md, Decision R).
    """
    G = child_parent_G(child_logits, parent_logits, temperature)
    L_R = reconstruction_loss(_unwrap(child), reduction=reconstruction_reduction).to(G)
    distill = -G
    parts = {"G": G.detach(), "L_R": L_R.detach()}
    if label_ce_weight:
        if labels is None:
            raise ValueError("label_ce_weight > 0 needs labels")
        ce = F.cross_entropy(_at_least_fp32(child_logits), labels).to(G.dtype)
        distill = distill + label_ce_weight * ce
        parts["CE"] = ce.detach()
    return distill, mu * L_R, parts


def child_weight_objective(child: nn.Module, child_logits: torch.Tensor,
                           parent_logits: torch.Tensor, **kw):
    """Loss of the ŵ/β step as one sum, −G + μ·L_R (+ label CE): ``(loss, parts)``.

    Keywords as ``child_weight_terms``.
    """
    distill, reconstruction, parts = child_weight_terms(child, child_logits, parent_logits, **kw)
    return distill + reconstruction, parts


TEACHER_BN = ("batch", "running")


@contextmanager
def teaching(parent: nn.Module, bn: str = "batch") -> Iterator[nn.Module]:
    """The Parent as a teacher (docs/METHOD.md, Decision T): normalised as it trains.

    ``batch``: train-mode BatchNorm (batch statistics) with its running statistics untouched, so
    teaching does not count the batch into them. ``running``: eval mode, running statistics —
    after a few hundred search updates these lag the weights and the teacher scores at chance
    (measured 0.078 vs 0.34–0.41 with batch statistics at the fashion-mnist sizes).
    Yields the bare module; leaves it in the mode it set (mode switches walk every module, so
    the steps set modes only where they change).
    """
    if bn not in TEACHER_BN:
        raise ValueError(f"unknown teacher BN policy {bn!r}; expected one of {TEACHER_BN}")
    net = _unwrap(parent)
    training = bn == "batch"
    if net.training != training:
        net.train(training)
    with frozen_bn_statistics(net):
        yield net


def parent_forward(parent: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor], *,
                   need_tangent: bool = True, alphas: Optional[TensorList] = None,
                   bn: Optional[str] = None):
    """One Parent forward serving both G's target and the tangent g_P = ∂f̃ᴾ/∂α (Eq. 4.29).

    f̃ᴾ = −CE(Parent logits, y). The tangent is taken with ``torch.autograd.grad`` w.r.t. α only,
    so no ``.grad`` accumulates on the Parent's weights and autograd skips the weight-gradient
    kernels. bn: the teacher's BatchNorm policy (``teaching``); None runs the Parent in whatever
    mode it is in (eval: running statistics; train: batch statistics, running ones updated). A
    DDP wrapper is bypassed (only α-gradients are taken; averaging the tangent over ranks is the
    caller's job).

    alphas: the architecture to evaluate the Parent at (default: its own registered α). Tensors
      that do not require grad are replaced by leaf copies that do.
    Returns ``(logits.detach(), tangent)``; tangent is a list shaped like α, or None when
    ``need_tangent`` is False (then the forward runs under ``no_grad``).
    """
    net = _unwrap(parent)
    ctx = teaching(net, bn) if bn is not None else contextlib.nullcontext()
    with ctx:
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


# -- D and ∂D/∂g_C live in discrepancy.py; re-exported here for callers of the objective ------------
from .discrepancy import DISTANCES, discrepancy, discrepancy_direction  # noqa: E402,F401
