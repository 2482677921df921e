"""One supernet searched alone with first-order DARTS alternation and label cross-entropy.

The shared body of the two single-network baselines (``darts``: the real-valued Parent,
``bnas``: the 1-bit Child). As in Table 4.3's rows for them, there is no tangent propagation and no
decoupled optimisation.
"""

from __future__ import annotations

from ..run.learner import build_learner
from ..run.driver import PhaseDriver
from ..run.steps import evaluate, label_arch_step, label_weight_step
from .base import MethodContext, SearchMethod


class SingleSupernetSearch(SearchMethod):
    kind = "parent"  # which supernet: "parent" (real-valued) or "child" (1-bit)

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        cfg, d, dev = ctx.cfg, ctx.data, ctx.device
        self.learner = build_learner(self.kind, cfg, d.in_channels, d.num_classes, dev,
                                     epochs=cfg.schedule.rounds, decoupled=False)
        self.steps = [label_weight_step(self.learner, cfg, dev), label_arch_step(self.learner, cfg, dev)]

    def num_epochs(self) -> int:
        return self.cfg.schedule.rounds

    def run_epoch(self, epoch: int, driver: PhaseDriver) -> dict:
        info = {"round": epoch + 1, "phase": self.kind}
        out = driver.run(self.steps, data_epoch=epoch, info=info,
                         where=f"round {epoch + 1}/{self.cfg.schedule.rounds}, {self.kind} epoch")
        self.learner.end_epoch()
        out.update(info, lr_w=self.learner.weight_lr())
        return out

    def alphas(self):
        return [a.detach() for a in self.learner.alphas]

    def networks(self):
        return [self.learner.net]

    def final_accuracies(self) -> dict[str, float]:
        acc = evaluate(self.learner.net, self.ctx.data.val, data_epoch=0,
                       max_batches=self.cfg.data.eval_batches, cfg=self.cfg, device=self.ctx.device)
        return {f"{self.kind}_acc": acc}

    def state_dict(self) -> dict:
        return {"learner": self.learner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
