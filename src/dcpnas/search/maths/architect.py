"""The architecture steps as objects with explicit inputs (pt.darts' ``Architect`` is the model).

* ``Teacher``        the Parent as it teaches the Child: G's target logits and the tangent
                     g_P = ∂f̃ᴾ/∂α (Eq. 4.29), normalised as it trains (docs/METHOD.md, Decision T).
* ``Architect``      the update every α-step ends with: Adam on α, then the decoupled backtrack
                     (Eqs. 4.50–4.53), with its diagnostics.
* ``LabelArchitect`` the Parent's (DARTS, BNAS) α-step: label cross-entropy on search-val.
* ``ChildArchitect`` the Child's α̂-step: ∇_α̂(−G + λD) (Eq. 4.33) with the configured curvature
                     and distance (strategy objects built once), then the backtrack.

Each ``step`` takes the batch and whatever it needs from the Parent as arguments and returns a
dict of scalars for the log. Gradients are averaged over ranks here (``all_reduce_mean_``): they
come from ``torch.autograd.grad`` and never pass DDP hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn.functional as F

from ...space.supernet import op_alphas
from ...utils.distributed import all_reduce_mean_, autocast_context
from .child_gradient import ArchGradient, child_arch_gradient
from .curvature import Curvature
from .discrepancy import Distance
from .objective import parent_forward, teaching

if TYPE_CHECKING:  # the architects step a learner the run machinery builds
    from ..run.learner import Learner

__all__ = ["Teacher", "Architect", "LabelArchitect", "ChildArchitect"]


def _norm(ts: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum(t.double().pow(2).sum() for t in ts))


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of top-1 hits (a float tensor, summed over ranks by the driver)."""
    return (logits.argmax(dim=1) == y).sum().float()


class Teacher:
    """The Parent learner seen by the Child: no-grad logits, and the tangent when asked."""

    def __init__(self, parent: Learner, *, bn: str = "batch", amp: bool = False,
                 device: Optional[torch.device] = None):
        self.parent, self.bn, self.amp, self.device = parent, bn, amp, device

    def logits(self, x: torch.Tensor, paths=None) -> torch.Tensor:
        """G's target on ``x`` (single-path when ``paths`` is given); no graph."""
        kw = {} if paths is None else {"paths": paths}
        with teaching(self.parent.net, self.bn), torch.no_grad(), \
                autocast_context(self.device or x.device, self.amp):
            return self.parent.net(x, **kw).detach()

    def logits_and_tangent(self, x: torch.Tensor, y: torch.Tensor, *, need_tangent: bool):
        """(logits, g_P averaged over ranks) from one Parent forward; g_P None if not needed."""
        with autocast_context(self.device or x.device, self.amp):
            logits, g_P = parent_forward(self.parent.net, x, y, need_tangent=need_tangent,
                                         bn=self.bn)
        if g_P is not None:
            all_reduce_mean_(g_P)  # the global tangent, like the global Child gradient
        return logits, g_P


class Architect:
    """Adam on α and the decoupled backtrack of one learner (the end of every α-step)."""

    def __init__(self, learner: Learner):
        self.learner = learner

    def apply(self, grads: Sequence[torch.Tensor]) -> dict:
        """α ← Adam(α, ∇L), then α̃ = α + c·ψ̃⊙α_prev on the masked ops (Eq. 4.52).

        ``grads`` are averaged over ranks in place first. Returns the decoupled diagnostics:
        backtrack_ratio = ‖α̃ − α‖ / ‖α − α_prev‖ (the backtrack against the Adam step) and the
        mean learned coefficient (φ, or ψ̃ under the book's parametrisation).
        """
        grads = list(grads)
        all_reduce_mean_(grads)
        L = self.learner
        alphas, dec = L.alphas, L.decoupled
        ops = op_alphas(alphas)  # the backtrack is per op column (Eq. 4.52): β is not backtracked
        if dec is not None:
            dec.update_psi(op_alphas(grads))
            dec.remember(ops)
            prev = [a.detach().clone() for a in ops]
        for a, g in zip(alphas, grads):
            a.grad = g.detach().to(a.dtype)
        L.a_opt.step()
        L.a_opt.zero_grad(set_to_none=True)
        if dec is None:
            return {}
        stepped = [a.detach().clone() for a in ops]
        dec.apply(ops, L.net.op_weight_sq_norms(), dec.eta(L.arch_lr(), L.weight_lr()))
        adam = _norm([s - p for s, p in zip(stepped, prev)])
        back = _norm([a.detach() - s for a, s in zip(ops, stepped)])
        prefix = L.name
        # Diagnostics stay on the device (the driver reads them once per log interval).
        return {f"{prefix}_backtrack_ratio": torch.where(adam > 0, back / adam, torch.zeros_like(adam)),
                f"{prefix}_decoupled_coef": dec.coefficient_mean()}


class LabelArchitect(Architect):
    """α on search-val with label cross-entropy (Eq. 4.21; Eq. 4.25 for BNAS)."""

    def __init__(self, learner: Learner, *, amp: bool = False,
                 device: Optional[torch.device] = None):
        super().__init__(learner)
        self.amp, self.device = amp, device

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, list[torch.Tensor]]:
        """Returns (log values, ∂f̃/∂α = −∂CE/∂α averaged over ranks: the Parent's tangent)."""
        L = self.learner
        if not L.net.training:
            L.net.train(True)
        with autocast_context(self.device or x.device, self.amp):
            logits = L.net(x)
        loss = F.cross_entropy(logits.float(), y)
        grads = list(torch.autograd.grad(loss, L.alphas))
        out = self.apply(grads)  # grads are rank-averaged in place
        out.update({f"{L.name}_val_CE": loss.detach(), f"{L.name}_correct": correct(logits, y),
                    f"{L.name}_count": float(len(y))})
        return out, [-g for g in grads]


class ChildArchitect(Architect):
    """The Child's α̂-step: ∇_α̂(−G + λD) (Eq. 4.33), then the backtrack with R(β∘sign ŵ).

    lam: λ (0: the CP-NAS objective, no tangent and no curvature work); distance, curvature:
    strategy objects; temperature, label_ce_weight: the definition of G̃.
    """

    def __init__(self, child: Learner, *, lam: float, distance: Distance, curvature: Curvature,
                 temperature: float = 1.0, label_ce_weight: float = 0.0, amp: bool = False,
                 device: Optional[torch.device] = None):
        super().__init__(child)
        self.lam, self.distance, self.curvature = float(lam), distance, curvature
        self.temperature, self.label_ce_weight = temperature, label_ce_weight
        self.amp, self.device = amp, device

    @property
    def needs_tangent(self) -> bool:
        return self.lam != 0

    def gradient(self, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor,
                 tangent: Optional[Sequence[torch.Tensor]]) -> ArchGradient:
        """∇_α̂(−G + λD) on this rank's batch (not yet averaged over ranks)."""
        net = self.learner.net
        if not net.training:
            net.train(True)
        with autocast_context(self.device or x.device, self.amp):
            return child_arch_gradient(
                net, x, teacher_logits, tangent, lam=self.lam, distance=self.distance,
                curvature=self.curvature, temperature=self.temperature,
                label_ce_weight=self.label_ce_weight, labels=y)

    def step(self, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor,
             tangent: Optional[Sequence[torch.Tensor]]) -> dict:
        ag = self.gradient(x, y, teacher_logits, tangent)
        out = self.apply(ag.grad)
        out.update({"G_val": ag.G, "rho": ag.rho, "cos_step_gC": ag.cos,
                    "child_correct": correct(ag.child_logits, y), "child_count": float(len(y))})
        if tangent is not None:  # without a tangent (λ = 0) there is no D to log
            out["D"] = ag.D
        return out
