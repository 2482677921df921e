"""The Child's architecture gradient ∇_α̂(−G + λD) (Eq. 4.33), for one α̂-batch."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .curvature import ChildGraph, Curvature, consistent_derivatives
from .discrepancy import Distance
from .objective import child_objective_per_sample, child_parent_G_per_sample


@dataclass
class ArchGradient:
    """Result of ``child_arch_gradient``.

    grad: ∇_α̂(−G̃ + λD) = −g_C + λ·H_G·∂D/∂g_C, shaped like the α̂ list (detached).
    G: the batch's G = −KL(p_P ‖ p̂_C) (without the optional label term).
    D: the discrepancy D(g_C, g_P) (NaN when no tangent was given).
    g_C: ∂G̃/∂α̂ (detached), G̃ = G − label_ce_weight·CE (= G by default).
    child_logits: the Child's logits on the batch (detached), for accuracy without a forward.
    curvature_term: H_G·∂D/∂g_C, or None when λ = 0.
    rho: ‖λ·H_G·∂D/∂g_C‖ / ‖g_C‖, how much D acts on the step (0 when λ = 0).
    cos: cos(grad, −g_C); 1 when D only rescales the step or is off.
    G, D, rho and cos are 0-dim tensors on the device when computed (no host sync); D is NaN and
    rho, cos the Python numbers 0 and 1 when there is nothing to compute.
    """

    grad: list[torch.Tensor]
    G: torch.Tensor
    D: torch.Tensor | float
    g_C: list[torch.Tensor]
    child_logits: torch.Tensor
    curvature_term: Optional[list[torch.Tensor]] = None
    rho: torch.Tensor | float = 0.0
    cos: torch.Tensor | float = 1.0


def _norm(ts: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum(t.double().pow(2).sum() for t in ts))


def _cos(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    dot = sum((x.double() * y.double()).sum() for x, y in zip(a, b))
    den = _norm(a) * _norm(b)
    return torch.where(den > 0, dot / den, torch.ones_like(den))


def child_arch_gradient(child: nn.Module, x: torch.Tensor, parent_logits: torch.Tensor,
                        tangent: Optional[Sequence[torch.Tensor]], *, lam: float,
                        distance: Distance, curvature: Curvature, temperature: float = 1.0,
                        label_ce_weight: float = 0.0, labels: Optional[torch.Tensor] = None,
                        alphas: Optional[Sequence[torch.Tensor]] = None) -> ArchGradient:
    """∇_α̂ of the DCP-NAS architecture objective −G + λD on one batch (Eq. 4.33).

    child: the 1-bit Child supernet (pass the bare module, not a DDP wrapper: only α̂ gradients
      are taken, and their all-reduce is the caller's job). Its train/eval mode is respected.
    x: the α̂-batch; parent_logits: the teaching Parent's logits on it (``parent_forward``);
    tangent: g_P = ∂f̃ᴾ/∂α on the same batch (or a held-fixed one). May be None when λ = 0
      (CP-NAS needs no Parent backward); D is then NaN.
    lam: λ. λ = 0 is the CP-NAS objective: the result is exactly −g_C and no curvature work runs.
    distance, curvature: the ``Distance`` and ``Curvature`` strategies (built once from the config:
      ``make_distance``, ``curvature_from_config``).
    temperature, label_ce_weight, labels: the definition of G̃ (docs/METHOD.md, Decision G).
    alphas: the α̂ tensors to differentiate (default: ``child.arch_parameters()``).

    Cost: λ = 0 or fisher K=1 is one Child forward and one first-order backward w.r.t. α̂ only;
    fisher K>1 adds a batched backward for the K micro-batch gradients; ggn adds a forward-mode
    pass and one VJP (jvp="reverse": the first backward with a graph, a double VJP and one VJP); exact keeps the first backward's graph and runs a double backward, in full
    precision (autocast is switched off for it) and under ``consistent_derivatives``.

    The returned grad is not written to ``.grad``; the caller does that (and any all-reduce).
    """
    curv, dist = curvature, distance
    net = getattr(child, "module", child)
    alphas = list(net.arch_parameters() if alphas is None else alphas)
    use_curvature = lam != 0
    if use_curvature and tangent is None:
        raise ValueError("λ ≠ 0 needs the Parent's tangent direction")
    create_graph = use_curvature and curv.create_graph
    retain_graph = use_curvature and (curv.retain_graph or curv.create_graph)
    logit_graph = use_curvature and curv.logit_graph

    # Curvature products that differentiate a backward need one derivative convention at kinks
    # (both backwards of the exact path, the double VJP of the reverse-mode GGN); the exact path
    # also runs in full precision.
    precise = contextlib.ExitStack()
    if use_curvature and curv.full_precision:
        precise.enter_context(torch.autocast(x.device.type, enabled=False))
    if use_curvature and curv.consistent:
        precise.enter_context(consistent_derivatives(net))
    logit_grad = None
    with torch.enable_grad(), precise:
        child_logits = net(x, alphas=alphas)
        per_sample = child_objective_per_sample(child_logits, parent_logits,
                                                temperature=temperature,
                                                label_ce_weight=label_ce_weight, labels=labels)
        if logit_graph:
            # g_C = Jᵀu with u = ∂G̃/∂z a leaf: the same numbers, and a backward graph whose
            # derivative in u is J (the reverse-mode GGN's J v, Decision C).
            u, = torch.autograd.grad(per_sample.mean(), child_logits, retain_graph=True)
            logit_grad = u.detach().requires_grad_(True)
            g_C = torch.autograd.grad(child_logits, alphas, grad_outputs=logit_grad,
                                      create_graph=True)
        else:
            g_C = torch.autograd.grad(per_sample.mean(), alphas, create_graph=create_graph,
                                      retain_graph=retain_graph)
        g_C_det = [g.detach() for g in g_C]
        if tangent is not None:
            tangent = [t.detach().to(g) for t, g in zip(tangent, g_C_det)]
        D = dist.value(g_C_det, tangent).double() if tangent is not None else float("nan")
        with torch.no_grad():
            G_value = (child_parent_G_per_sample(child_logits, parent_logits, temperature).mean()
                       if label_ce_weight else per_sample.mean())
        if not use_curvature:
            return ArchGradient(grad=[-g for g in g_C_det], G=G_value.detach(), D=D, g_C=g_C_det,
                                child_logits=child_logits.detach())
        graph = ChildGraph(child=net, x=x, alphas=alphas, child_logits=child_logits,
                           per_sample=per_sample, g_C=g_C, logit_grad=logit_grad)
        term = curv.product(graph, dist.direction(g_C_det, tangent))
    term = [h.to(g) for g, h in zip(g_C_det, term)]
    grad = [-g + lam * h for g, h in zip(g_C_det, term)]
    n_C = _norm(g_C_det)
    rho = torch.where(n_C > 0, abs(lam) * _norm(term) / n_C, torch.full_like(n_C, float("inf")))
    return ArchGradient(grad=grad, G=G_value.detach(), D=D, g_C=g_C_det,
                        child_logits=child_logits.detach(), curvature_term=term, rho=rho,
                        cos=_cos(grad, [-g for g in g_C_det]))
