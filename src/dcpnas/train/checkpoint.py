"""The files of a training run: the resumable checkpoint and the model files.

* ``checkpoint.pt`` (format ``dcpnas-train-state/1``), written atomically after every epoch: model
  spec and weights, optimizer and schedule state, stage, epoch, global step, RNG states, batch
  state and the history of epoch records. A crash or kill leaves the last complete one.
* ``model.pt`` / ``step1.pt`` (format ``dcpnas-model/1``): spec + weights + metrics, what
  ``dcpnas eval``/``export`` and ``teacher.kind=checkpoint`` read.

Everything stored is tensors and plain containers, so ``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import DataError
from ..utils.io import atomic_save, load_checkpoint
from .spec import MODEL_FORMAT, ModelSpec

__all__ = ["STATE_FORMAT", "CHECKPOINT", "save_state", "load_state", "save_model", "rng_state",
           "set_rng_state"]

STATE_FORMAT = "dcpnas-train-state/1"
CHECKPOINT = "checkpoint.pt"


def rng_state() -> dict:
    """Python, NumPy, torch CPU and CUDA generator states, as tensors and plain values."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, *, spec: ModelSpec, model: torch.nn.Module, optimizer, schedule, stage: int,
               epoch: int, step: int, data_state: dict, history: list, config: dict) -> Path:
    """Write the resumable training state (``epoch``: epochs completed in ``stage``)."""
    return atomic_save({
        "format": STATE_FORMAT, "spec": spec.to_dict(), "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "stage": stage,
        "epoch": epoch, "step": step, "rng": rng_state(), "data": data_state, "history": history,
        "config": config}, path)


def load_state(path: Path) -> dict:
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise DataError(f"{path} is not a dcpnas training checkpoint (format {STATE_FORMAT})")
    return state


def save_model(path: Path, spec: ModelSpec, model: torch.nn.Module, metrics: Optional[dict[str, Any]] = None
               ) -> Path:
    """Write a model file: what is needed to rebuild and evaluate the network."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_save({"format": MODEL_FORMAT, "spec": spec.to_dict(), "state_dict": state,
                        "metrics": dict(metrics or {})}, path)
