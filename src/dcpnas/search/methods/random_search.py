"""Random search, the "Random Search" row of Table 4.3, under the same budget as DCP-NAS.

``random.samples`` genotypes are drawn uniformly from the space (per node two distinct inputs, a
non-``none`` op each). Each is trained from freshly initialised weights for ``random.epochs``
epochs as a one-hot Child sub-network (only its ops run: ``Supernet.forward(paths=...)``), with
the supervision of a real-valued Parent trained alongside on the same path (−G + μL_R, as the
DCP-NAS Child; ``supervision=parent``) or with label cross-entropy (``supervision=label``), then
scored by its search-val accuracy. The best one is the result. The default epochs per sample
spend what DCP-NAS spends: 2·rounds network-epochs in all.
"""

from __future__ import annotations

import torch

from ..run.learner import build_learner
from ..run.driver import PhaseDriver
from ..run.steps import build_teacher, distill_weight_step, evaluate, label_weight_step
from .base import MethodContext, SearchMethod
from .paths import genotype_paths, genotype_to_alphas, random_genotype


@SearchMethod.register("random")
class RandomSearch(SearchMethod):
    name = "random"

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        rc, rounds = self.cfg.random, self.cfg.schedule.rounds
        nets = 2 if rc.supervision == "parent" else 1
        self.per_sample = rc.epochs or max(1, 2 * rounds // (nets * rc.samples))
        self.results: list[dict] = []
        self.current: dict | None = None

    def num_epochs(self) -> int:
        return self.cfg.random.samples * self.per_sample

    # -- one sample ---------------------------------------------------------------------------------
    def sample_genotype(self, index: int):
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + index)
        return random_genotype(g)

    def _start(self, index: int) -> None:
        cfg, d, dev = self.cfg, self.ctx.data, self.ctx.device
        genotype = self.sample_genotype(index)
        paths = genotype_paths(genotype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed * 1_000_003 + index)
            child = build_learner("child", cfg, d.in_channels, d.num_classes, dev,
                                  epochs=self.per_sample, search_arch=False)
            parent = (build_learner("parent", cfg, d.in_channels, d.num_classes, dev,
                                    epochs=self.per_sample, search_arch=False)
                      if cfg.random.supervision == "parent" else None)
        if parent is None:
            steps = [label_weight_step(child, cfg, dev, paths)]
        else:
            steps = [label_weight_step(parent, cfg, dev, paths),
                     distill_weight_step(child, build_teacher(parent, cfg, dev), cfg, dev,
                                         paths)]
        self.current = {"index": index, "genotype": genotype, "paths": paths, "child": child,
                        "parent": parent, "steps": steps}

    def run_epoch(self, epoch: int, driver: PhaseDriver) -> dict:
        S, E = self.cfg.random.samples, self.per_sample
        s, ep = divmod(epoch, E)
        if self.current is None or self.current["index"] != s:
            self._start(s)
        cur = self.current
        info = {"round": s + 1, "phase": "random", "sample": s + 1}
        out = driver.run(cur["steps"], data_epoch=epoch, info=info,
                         where=f"random sample {s + 1}/{S}, epoch {ep + 1}/{E}")
        for learner in (cur["child"], cur["parent"]):
            if learner is not None:
                learner.end_epoch()
        out.update(info, sample_genotype=cur["genotype"].to_darts())
        if ep == E - 1:
            acc = evaluate(cur["child"].net, self.ctx.data.val, data_epoch=epoch,
                           max_batches=self.cfg.random.eval_batches, paths=cur["paths"],
                           cfg=self.cfg, device=self.ctx.device)
            self.results.append({"sample": s + 1, "genotype": cur["genotype"].to_dict(), "acc": acc})
            out["sample_acc"] = acc
            self.current = None
        return out

    # -- results ------------------------------------------------------------------------------------
    def best(self) -> dict | None:
        return max(self.results, key=lambda r: r["acc"], default=None)

    def _genotype(self):
        best = self.best()
        if best is not None:
            return load_genotype_dict(best["genotype"])
        return self.current["genotype"] if self.current else self.sample_genotype(0)

    def alphas(self):
        return genotype_to_alphas(self._genotype())

    def genotype(self):
        return self._genotype()

    def networks(self):
        if self.current is None:
            return []
        return [L.net for L in (self.current["child"], self.current["parent"]) if L is not None]

    def final_accuracies(self) -> dict[str, float]:
        best = self.best()
        return {} if best is None else {"child_acc": best["acc"], "best_sample": best["sample"]}

    def state_dict(self) -> dict:
        cur = self.current
        return {"results": list(self.results),
                "current": None if cur is None else {
                    "index": cur["index"], "child": cur["child"].state_dict(),
                    "parent": None if cur["parent"] is None else cur["parent"].state_dict()}}

    def load_state_dict(self, state: dict) -> None:
        self.results = list(state["results"])
        cur = state.get("current")
        self.current = None
        if cur is not None:
            self._start(int(cur["index"]))
            self.current["child"].load_state_dict(cur["child"])
            if cur["parent"] is not None:
                self.current["parent"].load_state_dict(cur["parent"])


def load_genotype_dict(data: dict):
    from ...space.genotype import from_dict

    return from_dict(data, "random search result")
