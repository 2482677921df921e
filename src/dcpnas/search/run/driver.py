"""The one alternation helper every method runs its steps with: epochs over (search-train,
search-val) batch pairs, with the non-finite guard, step logs, progress and the epoch's means.

An epoch is first-order DARTS alternation: for each pair of batches run the listed steps in order
(``steps.py``). Step outputs are averaged over ranks here (counts summed).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Optional

import torch

from ...utils.distributed import all_reduce_mean_, is_distributed
from ...utils.finite import check_finite_loss  # the shared non-finite guard
from .steps import Step

__all__ = ["PhaseDriver", "Meter", "epoch_length", "LOSS_KEYS", "BOUNDED_KEYS"]

#: Step outputs that are losses: a NaN or Inf in any of them stops the run.
LOSS_KEYS = ("parent_CE", "parent_val_CE", "child_CE", "child_val_CE", "loss_w_hat", "G", "L_R",
             "G_val", "D")
#: Cross-entropy-like outputs: one beyond utils.finite.DIVERGED means the run diverged.
BOUNDED_KEYS = ("parent_CE", "parent_val_CE", "child_CE", "child_val_CE", "G", "G_val")


def epoch_length(train, val, max_steps: int = 0) -> int:
    """Batch pairs in an epoch: the shorter of the two splits, capped by ``max_steps`` (0: no cap)."""
    n = min(len(train), len(val))
    return min(n, max_steps) if max_steps else n


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


class PhaseDriver:
    """Runs epochs of steps over (search-train, search-val) batch pairs, with logging, progress,
    the non-finite check and the per-epoch batch order.

    on_step(record) is called every ``log_every`` steps with the step's values; ``progress`` is
    advanced per batch; ``global_step`` counts the steps already run (a resumed run's). A NaN/Inf
    loss raises NonFiniteLossError naming the place and ``last_checkpoint()``.
    """

    def __init__(self, train, val, *, max_steps: int = 0, log_every: int = 10,
                 on_step: Optional[Callable[[dict], None]] = None, progress=None,
                 last_checkpoint: Callable[[], str] = lambda: "none", global_step: int = 0):
        self.train, self.val = train, val
        self.max_steps, self.log_every = max_steps, log_every
        self.on_step, self.progress = on_step, progress
        self.last_checkpoint = last_checkpoint
        self.global_step = global_step

    def steps_per_epoch(self, max_steps: Optional[int] = None) -> int:
        return epoch_length(self.train, self.val, self.max_steps if max_steps is None else max_steps)

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
            check_finite_loss(values, LOSS_KEYS, where=f"{where}, step {i + 1}",
                              kept=f"last good checkpoint: {self.last_checkpoint()}",
                              bounded=BOUNDED_KEYS, hint="lower the learning rate")
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
