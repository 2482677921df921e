"""The one alternation helper every method runs its steps with: epochs over (search-train,
search-val) batch pairs, with the non-finite guard, step logs, progress and the epoch's means.

An epoch is first-order DARTS alternation: for each pair of batches run the listed steps in order
(``steps.py``). Step outputs stay on the device: they are averaged over ranks there, summed there,
and checked there by the non-finite guard; the host reads them once per log interval
(``log_every`` steps) and once at the end of the epoch, so a GPU's stream is not stalled in between.
A NaN or a diverged loss stops the run at that read, naming the step where it first appeared.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Optional

import torch

from ...utils.distributed import all_reduce_mean_, is_distributed
from ...utils.finite import DIVERGED, check_finite_loss  # the shared non-finite guard
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
    """Sums of step outputs, kept where they are made: tensors on their device (no host sync per
    step), Python numbers on the host. ``read()`` brings everything over in one transfer.

    Tensor outputs are summed in float64 per set of keys (a step list returns the same keys every
    step). Each step also marks, on the device, the first step whose losses were not finite or
    diverged and keeps that step's values, so that the guard can name it when it reads.
    """

    def __init__(self):
        self.groups: dict[tuple, dict] = {}   # tensor keys -> sum, count, first bad step, its values
        self.last: Optional[tuple[tuple, torch.Tensor]] = None
        self.host_sums: dict[str, float] = {}
        self.host_counts: dict[str, int] = {}
        self.host_last: dict[str, float] = {}
        self.order: dict[str, None] = {}      # keys in the order they first came

    def add(self, values: Mapping, step: int) -> None:
        for k in values:
            self.order.setdefault(k)
        if is_distributed():   # every output is averaged over ranks, counts included
            dev = next((v.device for v in values.values() if isinstance(v, torch.Tensor)), None)
            values = {k: v if isinstance(v, torch.Tensor) else torch.tensor(float(v), device=dev)
                      for k, v in values.items()}
        keys = tuple(k for k, v in values.items() if isinstance(v, torch.Tensor))
        self.host_last = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
        for k, v in self.host_last.items():
            self.host_sums[k] = self.host_sums.get(k, 0.0) + v
            self.host_counts[k] = self.host_counts.get(k, 0) + 1
        if not keys:
            self.last = None
            return
        vec = torch.stack([values[k].detach().reshape(()).double() for k in keys])
        if is_distributed():
            all_reduce_mean_(vec)
        g = self.groups.get(keys)
        if g is None:
            index = {name: torch.tensor([i for i, k in enumerate(keys) if k in which],
                                        dtype=torch.long, device=vec.device)
                     for name, which in (("loss", LOSS_KEYS), ("bounded", BOUNDED_KEYS))}
            g = self.groups[keys] = {
                "sum": torch.zeros_like(vec), "count": 0, **index,
                "bad_step": torch.full((), -1.0, dtype=torch.float64, device=vec.device),
                "bad_values": torch.zeros_like(vec)}
        g["sum"] += vec
        g["count"] += 1
        # The guard on the device: a NaN/Inf loss or a diverged cross-entropy marks the step.
        bad = ((~torch.isfinite(vec.index_select(0, g["loss"]))).any()
               | (vec.index_select(0, g["bounded"]).abs() > DIVERGED).any())
        first = bad & (g["bad_step"] < 0)
        g["bad_step"] = torch.where(first, float(step), g["bad_step"])
        g["bad_values"] = torch.where(first, vec, g["bad_values"])
        self.last = (keys, vec)

    def read(self) -> dict:
        """One device-to-host transfer: ``{"sums", "counts", "bad": (step, values) or None,
        "last": the last step's values}``."""
        groups = list(self.groups.items())
        parts = [t for _, g in groups for t in (g["sum"], g["bad_step"].reshape(1), g["bad_values"])]
        if self.last is not None:
            parts.append(self.last[1])
        flat = torch.cat(parts).tolist() if parts else []
        sums, counts = dict(self.host_sums), dict(self.host_counts)
        bad, pos = None, 0
        for keys, g in groups:
            n = len(keys)
            s, step, vals = flat[pos:pos + n], flat[pos + n], flat[pos + n + 1:pos + 2 * n + 1]
            pos += 2 * n + 1
            for k, v in zip(keys, s):
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + g["count"]
            if step >= 0 and (bad is None or step < bad[0]):
                bad = (int(step), dict(zip(keys, vals)))
        last = dict(self.host_last)
        if self.last is not None:
            last.update(zip(self.last[0], flat[pos:]))
        sums = {k: sums[k] for k in self.order if k in sums}
        return {"sums": sums, "counts": counts, "bad": bad, "last": last}

    @staticmethod
    def means(sums: Mapping[str, float], counts: Mapping[str, int]) -> dict[str, float]:
        """Means of the sums; ``*_correct``/``*_count`` pairs become ``*_acc``."""
        out = {}
        for k, s in sums.items():
            if k.endswith("_count"):
                continue
            if k.endswith("_correct"):
                base = k[: -len("_correct")]
                n = sums.get(base + "_count", 0.0)
                out[base + "_acc"] = s / n if n else float("nan")
            else:
                out[k] = s / counts[k]
        return out


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
            meter.add(values, step=i + 1)
            self.global_step += 1
            if self.progress is not None:
                self.progress.update()
            if self.on_step is not None and self.global_step % self.log_every == 0:
                # A log point: the one read of this interval (the step's values and the guard).
                last = self._read(meter, where)["last"]
                rec = {"event": "step", "where": where, "step": i + 1,
                       "global_step": self.global_step}
                rec.update(info or {})
                rec.update({k: last[k] for k in values if not k.endswith(("_correct", "_count"))})
                self.on_step(rec)
        state = self._read(meter, where)
        out = Meter.means(state["sums"], state["counts"])
        out["steps"] = done
        out["time_s"] = time.perf_counter() - start
        return out

    def _read(self, meter: Meter, where: str) -> dict:
        """Read the meter (one host sync) and stop the run if the guard marked a step."""
        state = meter.read()
        if state["bad"] is not None:
            step, values = state["bad"]
            check_finite_loss(values, LOSS_KEYS, where=f"{where}, step {step}",
                              kept=f"last good checkpoint: {self.last_checkpoint()}",
                              bounded=BOUNDED_KEYS, hint="lower the learning rate")
        return state
