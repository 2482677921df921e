"""The files of a training run: the resumable checkpoint and the model files.

* ``checkpoint.pt`` (format ``dcpnas-train-state/1``), written atomically after every epoch: model
  spec and weights, optimizer and schedule state, stage, epoch, global step, RNG states, batch
  state and the history of epoch records. A crash or kill leaves the last complete one.
* ``model.pt`` / ``step1.pt`` (format ``dcpnas-model/1``): spec + weights + metrics, what
  ``dcpnas eval``/``export`` and ``teacher.kind=checkpoint`` read; written and read by ``modelfile.py``.

Everything stored is tensors and plain containers, so ``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

from pathlib import Path

from ..utils.finite import kept_checkpoint
from ..utils.io import atomic_save, load_run_checkpoint
from ..utils.runstate import rng_state, set_rng_state  # noqa: F401  (part of this module's API)
from .modelfile import STATE_FORMAT, save_model  # noqa: F401  (every file format lives in modelfile.py)

__all__ = ["STATE_FORMAT", "CHECKPOINT", "save_state", "load_state", "save_model", "rng_state",
           "set_rng_state"]

CHECKPOINT = "checkpoint.pt"


def save_state(path: Path, *, spec, model, optimizer, schedule, stage: int,
               epoch: int, step: int, data_state: dict, history: list, config: dict) -> Path:
    """Write the resumable training state (``epoch``: epochs completed in ``stage``); the caller has
    checked it is finite (:func:`dcpnas.utils.finite.check_finite_state`)."""
    return atomic_save({
        "format": STATE_FORMAT, "spec": spec.to_dict(), "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "stage": stage,
        "epoch": epoch, "step": step, "rng": rng_state(), "data": data_state, "history": history,
        "config": config}, path, kept=kept_checkpoint(path))


_FIELDS = {"spec": dict, "state_dict": dict, "optimizer": dict, "schedule": dict, "stage": int, "epoch": int,
           "step": int, "rng": dict, "data": dict, "history": list, "config": dict}


def load_state(path: Path) -> dict:
    """The training state at ``path``, its fields type-checked (a crafted or damaged file is a
    one-line DataError)."""
    return load_run_checkpoint(path, STATE_FORMAT, _FIELDS, "dcpnas training checkpoint")
