"""The steps of a search epoch: each wires a pair of batches to a learner's update or an architect.

A *step* is a callable ``step(x_train, y_train, x_val, y_val) -> dict`` of scalars; the driver
(``driver.py``) runs the listed steps in order on each pair of (search-train, search-val) batches.
The Parent phase of DCP-NAS is ``[label_weight_step(P), label_arch_step(P)]``, the
Child phase ``[distill_weight_step(C, teacher), dcp_arch_step(architect, teacher)]``, per-step
alternation is the four with inheritance steps in between, DARTS/BNAS are the first pair on one
supernet, and the sampling baselines use the weight steps on a single path. The α-steps are
objects with explicit inputs (``maths/architect.py``); the steps here only wire batches to them.

Gradients of weights and of α are averaged over ranks explicitly (``all_reduce_mean_``): the
α-gradients come from ``torch.autograd.grad`` and never pass DDP hooks.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ...utils.distributed import all_reduce_mean_, autocast_context, is_distributed
from ..config import SearchConfig
from ..maths.architect import ChildArchitect, LabelArchitect, Teacher, correct
from ..maths.curvature import curvature_from_config
from ..maths.discrepancy import make_distance
from ..maths.objective import child_weight_terms, teaching
from .learner import Learner

__all__ = ["Step", "TangentMean", "label_weight_step", "label_arch_step", "distill_weight_step",
           "dcp_arch_step", "inherit_step", "evaluate", "set_mode", "balanced_weight_update",
           "build_teacher", "build_child_architect"]

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict]


# -- helpers ------------------------------------------------------------------------------------------
def set_mode(net: torch.nn.Module, training: bool) -> None:
    """Put ``net`` in train or eval mode (eval: running BN statistics, no updates).

    Each step states the modes it needs instead of toggling and restoring: ``Module.train()``
    walks every module of a supernet, so mode switches happen only where the mode changes (at
    phase boundaries when alternating per epoch).
    """
    if net.training != training:
        net.train(training)


_correct = correct


def _finish_weight_step(learner: Learner, grad_clip: float) -> None:
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(learner.weights, grad_clip)
    learner.w_opt.step()


def weight_update(learner: Learner, loss: torch.Tensor, grad_clip: float) -> None:
    """Backward into the weights only (α gets no gradient here), average over ranks, clip, step."""
    params = learner.weights
    learner.w_opt.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    all_reduce_mean_([p.grad for p in params])
    _finish_weight_step(learner, grad_clip)


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


def _sq_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ‖t‖² over ``tensors`` (float64, on their device) by torch's foreach norm: a 1-bit supernet
    has thousands of small gradient tensors, for which one fused pass beats a Python loop."""
    return torch.nn.utils.get_total_norm(tensors, 2.0, foreach=True).double() ** 2


def balanced_weight_update(learner: Learner, distill: torch.Tensor, reconstruction: torch.Tensor,
                           *, cap: float, grad_clip: float) -> torch.Tensor:
    """The Child's weight step with G driving it (docs/METHOD.md, Decision R).

    The gradients of −G (+ label CE) and of μL_R are formed apart and averaged over ranks; when
    ``cap`` > 0 the reconstruction part is scaled down so that ‖μ∇L_R‖ ≤ cap·‖∇G‖; their sum is
    clipped (``grad_clip``) and stepped. Returns G's share of the weight-gradient norm²,
    ‖∇G‖² / (‖∇G‖² + ‖μ∇L_R‖²) after the cap (≥ 1/(1 + cap²)), as a float64 tensor on the
    device. Measured without the cap: 24–37 % early and 2–5 % after three epochs, so L_R, not the
    Parent, trained the Child.
    """
    params = learner.weights
    g_D, g_R = _grads(distill, params), _grads(reconstruction, params)
    all_reduce_mean_(g_D + g_R)
    n_D2, n_R2 = _sq_norm(g_D), _sq_norm(g_R)
    if cap > 0 and g_R:
        # Branch-free (no host sync): the scale is 1 unless the cap binds.
        over = n_R2 > cap * cap * n_D2
        scale = torch.where(over, cap * torch.sqrt(n_D2 / n_R2), torch.ones_like(n_R2))
        torch._foreach_mul_(g_R, scale.to(g_R[0].dtype))
        n_R2 = n_R2 * scale * scale
    for p, d, r in zip(params, g_D, g_R):
        p.grad = d.add_(r)
    _finish_weight_step(learner, grad_clip)
    total = n_D2 + n_R2
    return torch.where(total > 0, n_D2 / total, torch.ones_like(total))


class TangentMean:
    """Running mean of the Parent's tangent g_P = ∂f̃ᴾ/∂α over its α-steps (tangent=epoch_mean)."""

    def __init__(self):
        self.total: Optional[list[torch.Tensor]] = None
        self.count = 0

    def reset(self) -> None:
        self.total, self.count = None, 0

    def add(self, tangent: Sequence[torch.Tensor]) -> None:
        t = [g.detach().clone() for g in tangent]
        self.total = t if self.total is None else [a + b for a, b in zip(self.total, t)]
        self.count += 1

    def mean(self) -> Optional[list[torch.Tensor]]:
        return None if self.total is None else [t / self.count for t in self.total]

    def state_dict(self) -> dict:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.count = state["total"], int(state["count"])


# -- the strategies, built once from the config ----------------------------------------------------
def build_teacher(parent: Learner, cfg: SearchConfig, device: torch.device) -> Teacher:
    return Teacher(parent, bn=cfg.objective.teacher_bn, amp=cfg.amp, device=device)


def build_child_architect(child: Learner, cfg: SearchConfig, device: torch.device) -> ChildArchitect:
    """The Child's α̂-step with λ in effect (``cfg.lam``), the distance and the curvature mode."""
    oc = cfg.objective
    return ChildArchitect(child, lam=cfg.lam, distance=make_distance(oc.distance, oc.discrepancy_scale),
                          curvature=curvature_from_config(oc), temperature=oc.temperature,
                          label_ce_weight=oc.label_ce_weight, amp=cfg.amp, device=device)


# -- steps ----------------------------------------------------------------------------------------
def label_weight_step(learner: Learner, cfg: SearchConfig, device: torch.device,
                      paths: Optional[Sequence] = None) -> Step:
    """w (or ŵ) on search-train with label cross-entropy (Eq. 4.21; Eq. 4.25 for BNAS); on the
    single path ``paths`` when given (the sampling baselines)."""
    key = f"{learner.name}_CE"
    kw = {} if paths is None else {"paths": paths}

    def step(xt, yt, xv, yv):
        set_mode(learner.net, True)
        with autocast_context(device, cfg.amp):
            logits = learner.net(xt, **kw)
        loss = F.cross_entropy(logits.float(), yt)
        weight_update(learner, loss, cfg.optim.grad_clip)
        return {key: loss.detach(), f"{learner.name}_train_correct": _correct(logits, yt),
                f"{learner.name}_train_count": float(len(yt))}
    return step


def label_arch_step(learner: Learner, cfg: SearchConfig, device: torch.device,
                    tangent_mean: Optional[TangentMean] = None) -> Step:
    """α on search-val with label cross-entropy, then the decoupled correction with R(w).

    With ``tangent_mean`` the Parent's tangent g_P = −∂CE/∂α of every step is accumulated.
    """
    architect = LabelArchitect(learner, amp=cfg.amp, device=device)

    def step(xt, yt, xv, yv):
        out, tangent = architect.step(xv, yv)
        if tangent_mean is not None:
            tangent_mean.add(tangent)
        return out
    return step


def distill_weight_step(child: Learner, teacher: Teacher, cfg: SearchConfig, device: torch.device,
                        paths: Optional[Sequence] = None) -> Step:
    """ŵ, β on search-train with −G + μL_R (+ label CE), G's target from the teaching Parent on
    the same batch (Eqs. 4.32, 4.34); the two terms balanced by ``balanced_weight_update``."""
    oc = cfg.objective
    kw = {} if paths is None else {"paths": paths}

    def step(xt, yt, xv, yv):
        p_logits = teacher.logits(xt, paths)
        set_mode(child.net, True)
        with autocast_context(device, cfg.amp):
            c_logits = child.net(xt, **kw)
            distill, reconstruction, parts = child_weight_terms(
                child.net, c_logits, p_logits, mu=cfg.mu, temperature=oc.temperature,
                label_ce_weight=oc.label_ce_weight, labels=yt,
                reconstruction_reduction=oc.reconstruction_reduction)
        share = balanced_weight_update(child, distill, reconstruction,
                                       cap=oc.reconstruction_cap, grad_clip=cfg.optim.grad_clip)
        out = {"loss_w_hat": (distill + reconstruction).detach(), "G": parts["G"],
               "L_R": parts["L_R"], "G_share": share,
               "child_train_correct": _correct(c_logits, yt), "child_train_count": float(len(yt))}
        if "CE" in parts:
            out["child_CE"] = parts["CE"]
        return out
    return step


#: A tangent held fixed for the Child: a value (the last Parent epoch's mean g_P), or the running
#: mean the Parent's α-steps of this round feed (per-step alternation); None: g_P of the batch.
HeldTangent = Union[None, Sequence[torch.Tensor], TangentMean]


def dcp_arch_step(architect: ChildArchitect, teacher: Teacher, *, held_tangent: HeldTangent = None,
                  log_discrepancy: bool = False) -> Step:
    """α̂ on search-val with ∇_α̂(−G + λD) (``ChildArchitect``), then the decoupled correction.

    g_P is recomputed on the same batch by the teaching Parent with its own α (``held_tangent``
    None), or taken from ``held_tangent`` (tangent=epoch_mean). G's target and g_P come from one
    Parent forward. With λ = 0 (CP-NAS) no tangent is computed unless ``log_discrepancy`` asks for
    D. The teacher's accuracy on the α̂-batch is logged beside the Child's.
    """
    def step(xt, yt, xv, yv):
        tangent = held_tangent.mean() if isinstance(held_tangent, TangentMean) else held_tangent
        need = tangent is None and (architect.needs_tangent or log_discrepancy)
        p_logits, g_P = teacher.logits_and_tangent(xv, yv, need_tangent=need)
        if tangent is None:
            tangent = g_P
        out = architect.step(xv, yv, p_logits, tangent)
        out.update(teacher_correct=_correct(p_logits, yv), teacher_count=float(len(yv)))
        return out
    return step


def inherit_step(src: Learner, dst: Learner) -> Step:
    """Architecture inheritance (α̂ ← α or α ← α̂) as a step, for per-step alternation."""
    def step(xt, yt, xv, yv):
        dst.net.load_arch(src.alphas)
        dst.forget_backtrack()
        return {}
    return step


@torch.no_grad()
def evaluate(net: torch.nn.Module, batches, *, data_epoch: int, max_batches: int = 0,
             paths: Optional[Sequence] = None, cfg: Optional[SearchConfig] = None,
             device: Optional[torch.device] = None) -> float:
    """Top-1 accuracy of ``net`` on ``batches`` (all ranks together).

    BatchNorm as the Parent teaches (``objective.teacher_bn``; batch statistics with the running
    ones untouched by default, docs/METHOD.md Decision T): a supernet's running statistics lag its
    weights over a short search. Without ``cfg``: eval mode.
    """
    batches.set_epoch(data_epoch)
    amp = cfg.amp if cfg is not None else False
    bn = cfg.objective.teacher_bn if cfg is not None else "running"
    with teaching(net, bn):
        return _evaluate(net, batches, max_batches=max_batches, paths=paths, amp=amp,
                         device=device)


def _evaluate(net, batches, *, max_batches, paths, amp, device) -> float:
    correct = count = None
    for i, (x, y) in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        with autocast_context(device or x.device, amp):
            logits = net(x) if paths is None else net(x, paths=paths)
        hits = _correct(logits, y).double()       # summed on the device: one read at the end
        correct = hits if correct is None else correct + hits
        count = (count or 0) + len(y)
    if correct is None:
        return float("nan")
    t = torch.stack([correct, torch.full_like(correct, float(count))])
    if is_distributed():
        all_reduce_mean_(t)
    correct, count = t.tolist()
    return correct / count if count > 0 else float("nan")
