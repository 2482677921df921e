"""The steps of a search epoch and the one alternation helper every method runs them with.

A *step* is a callable ``step(x_train, y_train, x_val, y_val) -> dict`` of scalars; an epoch is
first-order DARTS alternation: for each pair of (search-train, search-val) batches run the listed
steps in order. The Parent phase of DCP-NAS is ``[label_weight_step(P), label_arch_step(P)]``, the
Child phase ``[distill_weight_step(C, P), dcp_arch_step(C, P)]``, per-step alternation is the four
with inheritance steps in between, DARTS/BNAS are the first pair on one supernet, and the sampling
baselines use the weight steps on a single path.

Gradients of weights and of α are averaged over ranks explicitly (``all_reduce_mean_``): the
α-gradients come from ``torch.autograd.grad`` and never pass DDP hooks.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import NonFiniteLossError
from ..utils.distributed import all_reduce_mean_, autocast_context, is_distributed
from .child_gradient import child_arch_gradient
from .config import SearchConfig
from .learner import Learner
from .objective import child_weight_objective, parent_forward

__all__ = ["Step", "PhaseDriver", "Meter", "TangentMean", "label_weight_step", "label_arch_step",
           "distill_weight_step", "dcp_arch_step", "inherit_step", "evaluate", "set_mode",
           "sync_buffers"]

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict]

#: Step outputs that are losses: a NaN or Inf in any of them stops the run.
LOSS_KEYS = ("parent_CE", "parent_val_CE", "child_CE", "child_val_CE", "loss_w_hat", "G", "L_R",
             "G_val", "D")


# -- helpers ------------------------------------------------------------------------------------------
def set_mode(net: torch.nn.Module, training: bool) -> None:
    """Put ``net`` in train or eval mode (eval: running BN statistics, no updates).

    Each step states the modes it needs instead of toggling and restoring: ``Module.train()``
    walks every module of a supernet, so mode switches happen only where the mode changes (at
    phase boundaries when alternating per epoch).
    """
    if net.training != training:
        net.train(training)


def _correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == y).sum().float()


def weight_update(learner: Learner, loss: torch.Tensor, grad_clip: float) -> None:
    """Backward into the weights only (α gets no gradient here), average over ranks, clip, step."""
    params = learner.weights
    learner.w_opt.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    all_reduce_mean_([p.grad for p in params])
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    learner.w_opt.step()


def arch_update(learner: Learner, grads: Sequence[torch.Tensor]) -> None:
    """α ← Adam(α, ∇L) then the decoupled backtrack (section 5.4 protocol); grads are averaged
    over ranks in place first."""
    all_reduce_mean_(list(grads))
    alphas = learner.alphas
    dec = learner.decoupled
    if dec is not None:
        dec.update_psi(grads)
        dec.remember(alphas)
    for a, g in zip(alphas, grads):
        a.grad = g.detach().to(a.dtype)
    learner.a_opt.step()
    learner.a_opt.zero_grad(set_to_none=True)
    if dec is not None:
        dec.apply(alphas, learner.net.op_weight_sq_norms(), learner.arch_lr() * learner.weight_lr())


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


# -- steps ----------------------------------------------------------------------------------------
def label_weight_step(learner: Learner, cfg: SearchConfig, device: torch.device,
                      paths_fn: Optional[Callable[[], Sequence]] = None) -> Step:
    """w (or ŵ) on search-train with label cross-entropy (Eq. 4.21; Eq. 4.25 for BNAS)."""
    key = f"{learner.name}_CE"

    def step(xt, yt, xv, yv):
        set_mode(learner.net, True)
        with autocast_context(device, cfg.amp):
            logits = learner.net(xt, paths=paths_fn()) if paths_fn else learner.net(xt)
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
    name = learner.name

    def step(xt, yt, xv, yv):
        set_mode(learner.net, True)
        alphas = learner.alphas
        with autocast_context(device, cfg.amp):
            logits = learner.net(xv)
        loss = F.cross_entropy(logits.float(), yv)
        grads = list(torch.autograd.grad(loss, alphas))
        arch_update(learner, grads)  # grads are rank-averaged in place
        if tangent_mean is not None:
            tangent_mean.add([-g for g in grads])
        return {f"{name}_val_CE": loss.detach(), f"{name}_correct": _correct(logits, yv),
                f"{name}_count": float(len(yv))}
    return step


def distill_weight_step(child: Learner, parent: Learner, cfg: SearchConfig, device: torch.device,
                        paths_fn: Optional[Callable[[], Sequence]] = None) -> Step:
    """ŵ, β on search-train with −G + μL_R (+ label CE), G from the Parent's no-grad eval logits
    on the same batch (Eqs. 4.32, 4.34, method D.7)."""
    def step(xt, yt, xv, yv):
        paths = paths_fn() if paths_fn else None
        kw = {} if paths is None else {"paths": paths}
        set_mode(parent.net, False)
        set_mode(child.net, True)
        with torch.no_grad(), autocast_context(device, cfg.amp):
            p_logits = parent.net(xt, **kw)
        with autocast_context(device, cfg.amp):
            c_logits = child.net(xt, **kw)
            loss, parts = child_weight_objective(
                child.net, c_logits, p_logits, mu=cfg.mu, temperature=cfg.objective.temperature,
                label_ce_weight=cfg.objective.label_ce_weight, labels=yt,
                reconstruction_reduction=cfg.objective.reconstruction_reduction)
        weight_update(child, loss, cfg.optim.grad_clip)
        out = {"loss_w_hat": loss.detach(), "G": parts["G"], "L_R": parts["L_R"],
               "child_train_correct": _correct(c_logits, yt), "child_train_count": float(len(yt))}
        if "CE" in parts:
            out["child_CE"] = parts["CE"]
        return out
    return step


def dcp_arch_step(child: Learner, parent: Learner, cfg: SearchConfig, device: torch.device,
                  fixed_tangent: Optional[Callable[[], Optional[list]]] = None) -> Step:
    """α̂ on search-val with ∇_α̂(−G + λD) (Eq. 4.33 with the configured curvature), then the
    decoupled correction with R(β∘sign ŵ).

    g_P is recomputed on the same batch with the frozen Parent and its own α (default), or taken
    from ``fixed_tangent()`` (tangent=epoch_mean). G's target and g_P come from one Parent forward.
    """
    oc = cfg.objective

    def step(xt, yt, xv, yv):
        tangent = fixed_tangent() if fixed_tangent is not None else None
        set_mode(parent.net, False)
        set_mode(child.net, True)
        with autocast_context(device, cfg.amp):
            p_logits, g_P = parent_forward(parent.net, xv, yv, need_tangent=tangent is None)
        if tangent is None:
            all_reduce_mean_(g_P)  # the global tangent, like the global Child gradient
            tangent = g_P
        with autocast_context(device, cfg.amp):
            ag = child_arch_gradient(
                child.net, xv, p_logits, tangent, lam=cfg.lam, distance=oc.distance,
                curvature=oc.curvature, fisher_microbatches=oc.fisher_microbatches,
                fisher_sign=oc.fisher_sign, temperature=oc.temperature,
                label_ce_weight=oc.label_ce_weight, labels=yv)
        arch_update(child, ag.grad)
        return {"G_val": ag.G, "D": ag.D, "child_correct": _correct(ag.child_logits, yv),
                "child_count": float(len(yv)), "parent_correct": _correct(p_logits, yv),
                "parent_count": float(len(yv))}
    return step


def inherit_step(src: Learner, dst: Learner) -> Step:
    """Architecture inheritance (α̂ ← α or α ← α̂) as a step, for per-step alternation."""
    def step(xt, yt, xv, yv):
        dst.net.load_arch(src.alphas)
        dst.forget_backtrack()
        return {}
    return step


# -- bookkeeping ----------------------------------------------------------------------------------
class Meter:
    """Sums of step outputs; ``means()`` turns ``*_correct``/``*_count`` pairs into accuracies."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        out = {}
        for k, s in self.sums.items():
            if k.endswith("_count"):
                continue
            if k.endswith("_correct"):
                base = k[: -len("_correct")]
                n = self.sums.get(base + "_count", 0.0)
                out[base + "_acc"] = s / n if n else float("nan")
            else:
                out[k] = s / self.counts[k]
        return out


def _reduce_scalars(values: dict) -> dict[str, float]:
    """Step outputs as floats, averaged over ranks (counts summed) in one collective."""
    if not values:
        return {}
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if is_distributed():
        dev = next((v.device for v in values.values() if isinstance(v, torch.Tensor)), None)
        t = t.to(dev) if dev is not None else t
        all_reduce_mean_(t)
        t = t.cpu()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


@torch.no_grad()
def sync_buffers(*nets: torch.nn.Module) -> None:
    """Average BN running statistics over ranks (each rank saw its own shard)."""
    for net in nets:
        all_reduce_mean_([b for b in net.buffers() if b.is_floating_point()])


class PhaseDriver:
    """Runs epochs of steps over (search-train, search-val) batch pairs, with logging, progress,
    the non-finite check and the per-epoch batch order.

    on_step(record) is called every ``log_every`` steps with the step's values; ``progress`` is
    advanced per batch. A NaN/Inf loss raises NonFiniteLossError naming the place and
    ``last_checkpoint``.
    """

    def __init__(self, train, val, *, max_steps: int = 0, log_every: int = 10,
                 on_step: Optional[Callable[[dict], None]] = None, progress=None,
                 last_checkpoint: Callable[[], str] = lambda: "none"):
        self.train, self.val = train, val
        self.max_steps, self.log_every = max_steps, log_every
        self.on_step, self.progress = on_step, progress
        self.last_checkpoint = last_checkpoint
        self.global_step = 0

    def steps_per_epoch(self, max_steps: Optional[int] = None) -> int:
        cap = self.max_steps if max_steps is None else max_steps
        n = min(len(self.train), len(self.val))
        return min(n, cap) if cap else n

    def run(self, steps: Iterable[Step], *, data_epoch: int, where: str,
            max_steps: Optional[int] = None, info: Optional[dict] = None) -> dict[str, float]:
        """One epoch: batches of ``data_epoch``'s order, each step in turn; returns the means."""
        steps = list(steps)
        n = self.steps_per_epoch(max_steps)
        self.train.set_epoch(data_epoch)
        self.val.set_epoch(data_epoch)
        meter = Meter()
        start = time.perf_counter()
        done = 0
        for i, ((xt, yt), (xv, yv)) in enumerate(zip(self.train, self.val)):
            if i >= n:
                break
            done = i + 1
            values: dict = {}
            for step in steps:
                values.update(step(xt, yt, xv, yv))
            values = _reduce_scalars(values)
            for k in LOSS_KEYS:
                if k in values and not math.isfinite(values[k]):
                    raise NonFiniteLossError(
                        f"{k} loss became {values[k]} at {where}, step {i + 1}; last good "
                        f"checkpoint: {self.last_checkpoint()}")
            meter.add(values)
            self.global_step += 1
            if self.progress is not None:
                self.progress.update()
            if self.on_step is not None and self.global_step % self.log_every == 0:
                rec = {"event": "step", "where": where, "step": i + 1,
                       "global_step": self.global_step}
                rec.update(info or {})
                rec.update({k: v for k, v in values.items() if not k.endswith(("_correct", "_count"))})
                self.on_step(rec)
        out = meter.means()
        out["steps"] = done
        out["time_s"] = time.perf_counter() - start
        return out


@torch.no_grad()
def evaluate(net: torch.nn.Module, batches, *, data_epoch: int, max_batches: int = 0,
             paths: Optional[Sequence] = None, cfg: Optional[SearchConfig] = None,
             device: Optional[torch.device] = None) -> float:
    """Top-1 accuracy of ``net`` in eval mode on ``batches`` (all ranks together)."""
    batches.set_epoch(data_epoch)
    correct = torch.zeros((), dtype=torch.float64)
    count = torch.zeros((), dtype=torch.float64)
    amp = cfg.amp if cfg is not None else False
    set_mode(net, False)
    for i, (x, y) in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        with autocast_context(device or x.device, amp):
            logits = net(x) if paths is None else net(x, paths=paths)
        correct += _correct(logits, y).double().cpu()
        count += len(y)
    t = torch.stack([correct, count])
    if is_distributed():
        dev = next(net.parameters()).device
        t = t.to(dev)
        all_reduce_mean_(t)
        t = t.cpu()
    return float(t[0] / t[1]) if t[1] > 0 else float("nan")
