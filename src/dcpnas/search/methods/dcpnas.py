"""DCP-NAS, Algorithm 10 (docs/METHOD.md#algorithm-10); with λ = 0 it is the CP-NAS objective (``cpnas``).

alternation="epoch" (default, literal): epoch 2r is the Parent epoch of round r (w on search-train
with CE; α on search-val with CE and the decoupled correction using R(w)), after which α̂ ← α;
epoch 2r+1 is the Child epoch (ŵ, β with −G + μL_R against the teaching Parent's logits on the
same batch; α̂ with ∇(−G + λD) and the decoupled correction using R(β∘sign ŵ)), after which α ← α̂.
alternation="step": one epoch per round, each batch runs P-w, P-α, α̂ ← α, C-ŵ, C-α̂, α ← α̂.
The genotype is derived from α̂.
"""

from __future__ import annotations

from ..run.driver import PhaseDriver
from ..run.learner import build_learner, init_child_from_parent
from ..run.steps import (TangentMean, build_child_architect, build_teacher, dcp_arch_step,
                         distill_weight_step, evaluate, inherit_step, label_arch_step,
                         label_weight_step)
from .base import MethodContext, SearchMethod


@SearchMethod.register("dcpnas", "cpnas")
class DcpNas(SearchMethod):
    name = "dcpnas"

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        cfg, d, dev = ctx.cfg, ctx.data, ctx.device
        rounds = cfg.schedule.rounds
        self.parent = build_learner("parent", cfg, d.in_channels, d.num_classes, dev, epochs=rounds,
                                    decoupled=True)
        self.child = build_learner("child", cfg, d.in_channels, d.num_classes, dev, epochs=rounds,
                                   decoupled=True)
        if cfg.init_child_from_parent:
            init_child_from_parent(self.child.net, self.parent.net)
        self.child.net.load_arch(self.parent.alphas)
        self.per_step = cfg.schedule.alternation == "step"
        # tangent=epoch_mean: g_P averaged over the Parent's α-steps (the last Parent epoch, or
        # the current round so far when alternating per step), held fixed for the Child.
        self.tangent = TangentMean() if cfg.objective.tangent == "epoch_mean" else None
        self.fixed_tangent = None    # the last Parent epoch's mean (alternation per epoch)
        P, C = self.parent, self.child
        self.parent_steps = [label_weight_step(P, cfg, dev), label_arch_step(P, cfg, dev, self.tangent)]
        self.teacher = build_teacher(P, cfg, dev)
        self.architect = build_child_architect(C, cfg, dev)
        self.child_weight_step = distill_weight_step(C, self.teacher, cfg, dev)
        if self.per_step:
            self.round_steps = (self.parent_steps + [inherit_step(P, C)]
                                + self.child_steps(held_tangent=self.tangent)
                                + [inherit_step(C, P)])

    def child_steps(self, held_tangent) -> list:
        """The Child phase's steps, its α̂-step given the tangent it holds (None: g_P per batch)."""
        return [self.child_weight_step,
                dcp_arch_step(self.architect, self.teacher, held_tangent=held_tangent,
                              log_discrepancy=self.cfg.objective.log_discrepancy)]

    def num_epochs(self) -> int:
        return self.cfg.schedule.rounds * (1 if self.per_step else 2)

    def run_epoch(self, epoch: int, driver: PhaseDriver) -> dict:
        rounds = self.cfg.schedule.rounds
        P, C = self.parent, self.child
        if self.per_step:
            r, phase = epoch, "parent+child"
            if self.tangent is not None:
                self.tangent.reset()
            out = driver.run(self.round_steps, data_epoch=epoch,
                             where=f"round {r + 1}/{rounds}, per-step alternation",
                             info={"round": r + 1, "phase": phase})
            P.end_epoch()
            C.end_epoch()
        else:
            r, which = divmod(epoch, 2)
            phase = ("parent", "child")[which]
            where = f"round {r + 1}/{rounds}, {phase} phase"
            info = {"round": r + 1, "phase": phase}
            if which == 0:
                if self.tangent is not None:
                    self.tangent.reset()
                out = driver.run(self.parent_steps, data_epoch=epoch, where=where, info=info)
                P.end_epoch()
                if self.tangent is not None:
                    self.fixed_tangent = self.tangent.mean()
                C.net.load_arch(P.alphas)      # architecture inheriting α̂ ← α
                C.forget_backtrack()
            else:
                out = driver.run(self.child_steps(held_tangent=self.fixed_tangent),
                                 data_epoch=epoch, where=where, info=info)
                C.end_epoch()
                P.net.load_arch(C.alphas)      # architecture inheriting α ← α̂
                P.forget_backtrack()
        out.update(round=r + 1, phase=phase, lr_w=P.weight_lr(), lr_w_hat=C.weight_lr())
        return out

    def alphas(self):
        return [a.detach() for a in self.child.alphas]

    def networks(self):
        return [self.parent.net, self.child.net]

    def sync_tensors(self):
        return [t for L in (self.parent, self.child) if L.decoupled is not None
                for t in L.decoupled.parameters_for_sync()]

    def final_accuracies(self) -> dict[str, float]:
        cfg, val = self.cfg, self.ctx.data.val
        kw = dict(data_epoch=0, max_batches=cfg.data.eval_batches, cfg=cfg, device=self.ctx.device)
        return {"parent_acc": evaluate(self.parent.net, val, **kw),
                "child_acc": evaluate(self.child.net, val, **kw)}

    def state_dict(self) -> dict:
        return {"parent": self.parent.state_dict(), "child": self.child.state_dict(),
                "tangent": None if self.tangent is None else self.tangent.state_dict(),
                "fixed_tangent": self.fixed_tangent}

    def load_state_dict(self, state: dict) -> None:
        self.parent.load_state_dict(state["parent"])
        self.child.load_state_dict(state["child"])
        if self.tangent is not None and state.get("tangent") is not None:
            self.tangent.load_state_dict(state["tangent"])
        self.fixed_tangent = state.get("fixed_tangent")
