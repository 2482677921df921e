"""The Child's architecture gradient ∇_α̂(−G + λD) (Eq. 4.33), for one α̂-batch."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .curvature import _check_mode, consistent_derivatives, curvature_product
from .objective import (_check_distance, child_objective_per_sample, child_parent_G_per_sample,
                        discrepancy, discrepancy_direction)


@dataclass
class ArchGradient:
    """Result of ``child_arch_gradient``.

    grad: ∇_α̂(−G̃ + λD) = −g_C + λ·H_G·∂D/∂g_C, shaped like the α̂ list (detached).
    G: the batch's G = −KL(p_P ‖ p̂_C) (without the optional label term).
    D: the discrepancy D(g_C, g_P) (also for λ = 0, for logging; NaN when no tangent was given).
    g_C: ∂G̃/∂α̂ (detached), G̃ = G − label_ce_weight·CE (= G by default).
    child_logits: the Child's logits on the batch (detached), for accuracy without a forward.
    curvature_term: H_G·∂D/∂g_C, or None when λ = 0.
    """

    grad: list[torch.Tensor]
    G: float
    D: float
    g_C: list[torch.Tensor]
    child_logits: torch.Tensor
    curvature_term: Optional[list[torch.Tensor]] = None


def child_arch_gradient(child: nn.Module, x: torch.Tensor, parent_logits: torch.Tensor,
                        tangent: Optional[Sequence[torch.Tensor]], *, lam: float = 5e-3,
                        distance: str = "fro", curvature: str = "fisher",
                        fisher_microbatches: int = 1, fisher_sign: float = -1.0,
                        temperature: float = 1.0, label_ce_weight: float = 0.0,
                        labels: Optional[torch.Tensor] = None,
                        alphas: Optional[Sequence[torch.Tensor]] = None) -> ArchGradient:
    """∇_α̂ of the DCP-NAS architecture objective −G + λD on one batch (Eq. 4.33, method D.2–D.3).

    child: the 1-bit Child supernet (pass the bare module, not a DDP wrapper: only α̂ gradients
      are taken, and their all-reduce is the caller's job). Its train/eval mode is respected.
    x: the α̂-batch; parent_logits: the frozen Parent's logits on it (``parent_forward``);
    tangent: g_P = ∂f̃ᴾ/∂α on the same batch (or a held-fixed one; section D.4). May be None
      when λ = 0 (CP-NAS needs no Parent backward); D is then NaN.
    lam: λ. λ = 0 is the CP-NAS objective: the result is exactly −g_C and no curvature work runs.
    distance: D's distance (fro | l1 | cosine); curvature: exact | ggn | fisher.
    fisher_microbatches: K for the Fisher estimate (1: rank-1 on g_C, the cheap default).
    fisher_sign: s in H_G ≈ s·F̂ (−1: G is a log-likelihood to maximise).
    temperature, label_ce_weight, labels: the definition of G̃ (section D.1).
    alphas: the α̂ tensors to differentiate (default: ``child.arch_parameters()``).

    Cost: fisher K=1 (or λ = 0) is one Child forward and one first-order backward w.r.t. α̂ only;
    fisher K>1 adds a batched backward for the K micro-batch gradients; ggn adds one forward-mode
    pass and one VJP; exact keeps the first backward's graph and runs a double backward, in full
    precision (autocast is switched off for it) and under ``consistent_derivatives``.

    The returned grad is not written to ``.grad``; the caller does that (and any all-reduce).
    """
    _check_mode(curvature)
    _check_distance(distance)
    net = getattr(child, "module", child)
    if alphas is None:
        alphas = net.arch_parameters()
    alphas = list(alphas)
    use_curvature = lam != 0
    exact = use_curvature and curvature == "exact"
    fisher_k = use_curvature and curvature == "fisher" and fisher_microbatches > 1
    keep_graph = use_curvature and (curvature == "ggn" or fisher_k)

    # The exact path: full precision, and one derivative convention at kinks for both backwards.
    exact_ctx = contextlib.ExitStack()
    if exact:
        exact_ctx.enter_context(torch.autocast(x.device.type, enabled=False))
        exact_ctx.enter_context(consistent_derivatives(net))
    with torch.enable_grad(), exact_ctx:
        child_logits = net(x, alphas=alphas)
        per_sample = child_objective_per_sample(child_logits, parent_logits,
                                                temperature=temperature,
                                                label_ce_weight=label_ce_weight, labels=labels)
        g_C = torch.autograd.grad(per_sample.mean(), alphas, create_graph=exact,
                                  retain_graph=keep_graph or exact)
        g_C_det = [g.detach() for g in g_C]
        if tangent is None:
            if use_curvature:
                raise ValueError("λ ≠ 0 needs the Parent's tangent direction")
            D = float("nan")
        else:
            tangent = [t.detach().to(g) for t, g in zip(tangent, g_C_det)]
            D = discrepancy(g_C_det, tangent, distance)

        with torch.no_grad():
            G_value = (child_parent_G_per_sample(child_logits, parent_logits, temperature).mean()
                       if label_ce_weight else per_sample.mean())
        term = None
        if use_curvature:
            direction = discrepancy_direction(g_C_det, tangent, distance)
            term = curvature_product(
                curvature, g_C=g_C, alphas=alphas, v=direction, child=net, x=x,
                child_logits=child_logits, temperature=temperature,
                label_ce_weight=label_ce_weight, fisher_sign=fisher_sign,
                per_sample_objective=per_sample, fisher_microbatches=fisher_microbatches)
            grad = [-g + lam * h.to(g) for g, h in zip(g_C_det, term)]
        else:
            grad = [-g for g in g_C_det]
    return ArchGradient(grad=grad, G=float(G_value), D=float(D), g_C=g_C_det,
                        child_logits=child_logits.detach(), curvature_term=term)
