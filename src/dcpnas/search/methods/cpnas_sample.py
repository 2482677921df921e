"""CP-NAS's own search, Algorithm 9 (Eqs. 4.15-4.16, docs/METHOD.md#eq-4-15): sample, score, prune.

Every edge starts with K = 8 candidate ops. A pruning stage runs ``sample.sweeps`` (T) sweeps of
K samplings; sampling k of a sweep takes, on every edge, the k-th op of a fresh random permutation
of its remaining ops (sampling without replacement: each op is sampled exactly once per sweep).
The single-path architecture is trained for a short epoch (``sample.steps`` batches) as a Parent
(label CE) and a Child (−G + μL_R against that Parent, the λ = 0 objective), then both are scored
on search-val; the indicator z = β_P(A_P − A_C) + A_C (Eq. 4.15) is credited to every sampled op.
After the stage, e(o) = softmax of the ops' mean z per edge (Eq. 4.16) and the worst op of every
edge is dropped; stages repeat until one op per edge is left (35·T samplings in all).

The Parent and the Child are weight-sharing supernets kept across samplings (only the sampled ops
run, ``Supernet.forward(paths=...)``). The α reported (and parsed into the genotype) is
``stage survived + mean z over the whole search``: the survivor of each edge is its strongest op,
and edges are ranked by the survivor's margin over the op pruned last.
"""

from __future__ import annotations

import torch

from ...space import NUM_EDGES, PRIMITIVES
from ..run.learner import build_learner
from ..run.driver import PhaseDriver, epoch_length
from ..run.steps import build_teacher, distill_weight_step, evaluate, label_weight_step
from .base import MethodContext, SearchMethod
from .paths import genotype_paths

M = len(PRIMITIVES)
STAGES = M - 1  # K = 8, 7, ..., 2 -> prune to 1


@SearchMethod.register("cpnas-sample")
class CpNasSample(SearchMethod):
    name = "cpnas-sample"

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        cfg, d, dev = ctx.cfg, ctx.data, ctx.device
        total = self.num_epochs()
        self.parent = build_learner("parent", cfg, d.in_channels, d.num_classes, dev, epochs=total,
                                    search_arch=False)
        self.child = build_learner("child", cfg, d.in_channels, d.num_classes, dev, epochs=total,
                                   search_arch=False)
        shape = (2, NUM_EDGES, M)
        self.alive = torch.ones(shape, dtype=torch.bool)
        self.pruned_at = torch.full(shape, -1, dtype=torch.long)
        self.z_stage = torch.zeros(shape, dtype=torch.float64)
        self.n_stage = torch.zeros(shape, dtype=torch.float64)
        self.z_all = torch.zeros(shape, dtype=torch.float64)
        self.n_all = torch.zeros(shape, dtype=torch.float64)
        self.paths = None
        self.teacher = build_teacher(self.parent, cfg, dev)

    # -- the schedule -------------------------------------------------------------------------------
    def num_epochs(self) -> int:
        T = self.cfg.sample.sweeps
        return T * sum(M - s for s in range(STAGES))

    def locate(self, epoch: int) -> tuple[int, int, int, int]:
        """(stage, K, sweep, sampling) of ``epoch``."""
        T = self.cfg.sample.sweeps
        for stage in range(STAGES):
            K = M - stage
            if epoch < T * K:
                sweep, k = divmod(epoch, K)
                return stage, K, sweep, k
            epoch -= T * K
        raise IndexError("epoch beyond the CP-NAS schedule")

    def epoch_steps(self, epoch: int) -> int:
        d = self.ctx.data
        return epoch_length(d.train, d.val, self.cfg.sample.steps or self.cfg.schedule.steps_per_epoch)

    def sample_paths(self, stage: int, sweep: int, k: int) -> torch.Tensor:
        """2 × 14 op indices: the k-th op of each edge's permutation of its remaining ops."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + stage * 1009 + sweep)
        out = torch.empty(2, NUM_EDGES, dtype=torch.long)
        for c in range(2):
            for e in range(NUM_EDGES):
                ops = self.alive[c, e].nonzero().flatten()
                out[c, e] = ops[torch.randperm(len(ops), generator=g)[k]]
        return out

    # -- one sampling -------------------------------------------------------------------------------
    def run_epoch(self, epoch: int, driver: PhaseDriver) -> dict:
        cfg, dev, val = self.cfg, self.ctx.device, self.ctx.data.val
        stage, K, sweep, k = self.locate(epoch)
        if int(self.alive[0, 0].sum()) != K:
            raise RuntimeError(f"CP-NAS state has {int(self.alive[0, 0].sum())} ops per edge at "
                               f"epoch {epoch}, expected {K}")
        sampled = self.sample_paths(stage, sweep, k)
        self.paths = (sampled[0].tolist(), sampled[1].tolist())
        info = {"round": stage + 1, "phase": "sample", "K": K, "sweep": sweep + 1, "sample": k + 1}
        steps = [label_weight_step(self.parent, cfg, dev, self.paths),     # this sample's path
                 distill_weight_step(self.child, self.teacher, cfg, dev, self.paths)]
        out = driver.run(steps, data_epoch=epoch, max_steps=cfg.sample.steps or None, info=info,
                         where=f"CP-NAS stage {stage + 1}/{STAGES} (K={K}), sweep {sweep + 1}, "
                               f"sample {k + 1}")
        self.parent.end_epoch()
        self.child.end_epoch()
        kw = dict(data_epoch=epoch, max_batches=cfg.sample.eval_batches, paths=self.paths, cfg=cfg,
                  device=dev)
        A_P = evaluate(self.parent.net, val, **kw)
        A_C = evaluate(self.child.net, val, **kw)
        z = cfg.sample.beta_p * (A_P - A_C) + A_C                      # Eq. 4.15
        idx = (torch.arange(2)[:, None], torch.arange(NUM_EDGES)[None, :], sampled)
        for acc, n in ((self.z_stage, self.n_stage), (self.z_all, self.n_all)):
            acc[idx] += z
            n[idx] += 1
        out.update(info, A_P=A_P, A_C=A_C, z=z, path_normal=self.paths[0], path_reduce=self.paths[1])
        if sweep == cfg.sample.sweeps - 1 and k == K - 1:
            out["pruned"] = self.prune(stage)
        return out

    def prune(self, stage: int) -> list[list[str]]:
        """Drop the op with the lowest e(o) (Eq. 4.16) on every edge; returns the dropped names."""
        zbar = self.z_stage / self.n_stage.clamp_min(1)
        scores = torch.where(self.alive, zbar, torch.full_like(zbar, float("-inf")))
        e = torch.softmax(scores, dim=-1)
        e = torch.where(self.alive, e, torch.full_like(e, float("inf")))
        worst = e.argmin(dim=-1)                                         # 2 × 14
        dropped = []
        for c in range(2):
            names = []
            for edge in range(NUM_EDGES):
                m = int(worst[c, edge])
                self.alive[c, edge, m] = False
                self.pruned_at[c, edge, m] = stage
                names.append(PRIMITIVES[m])
            dropped.append(names)
        self.z_stage.zero_()
        self.n_stage.zero_()
        return dropped

    # -- results ------------------------------------------------------------------------------------
    def alphas(self):
        level = torch.where(self.alive, torch.full_like(self.pruned_at, STAGES), self.pruned_at)
        a = level.double() + self.z_all / self.n_all.clamp_min(1)
        return [a[0].float(), a[1].float()]

    def networks(self):
        return [self.parent.net, self.child.net]

    def final_accuracies(self) -> dict[str, float]:
        paths = genotype_paths(self.genotype())
        kw = dict(data_epoch=0, max_batches=self.cfg.data.eval_batches, paths=paths, cfg=self.cfg,
                  device=self.ctx.device)
        return {"parent_acc": evaluate(self.parent.net, self.ctx.data.val, **kw),
                "child_acc": evaluate(self.child.net, self.ctx.data.val, **kw)}

    def state_dict(self) -> dict:
        return {"parent": self.parent.state_dict(), "child": self.child.state_dict(),
                "alive": self.alive.clone(), "pruned_at": self.pruned_at.clone(),
                "z_stage": self.z_stage.clone(), "n_stage": self.n_stage.clone(),
                "z_all": self.z_all.clone(), "n_all": self.n_all.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.parent.load_state_dict(state["parent"])
        self.child.load_state_dict(state["child"])
        for k in ("alive", "pruned_at", "z_stage", "n_stage", "z_all", "n_all"):
            getattr(self, k).copy_(state[k])
