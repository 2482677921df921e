"""Top-1/top-5 evaluation and loading a trained model from a model file or a training checkpoint."""

from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from ..utils.distributed import all_reduce_mean_, autocast_context, is_distributed
from .spec import ModelSpec

__all__ = ["evaluate", "load_model", "read_model_file"]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, *, amp: bool = True) -> dict:
    """Top-1 / top-5 accuracy (%) and mean cross-entropy of ``model`` (put in eval mode) over ``batches``.

    Under torch.distributed each process passes its own shard; the counts are summed over processes.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    stats = torch.zeros(4, dtype=torch.float64, device=device)   # n, top1, top5, loss sum
    try:
        for x, y in batches:
            with autocast_context(device, amp):
                logits = model(x)
            logits = logits.float()
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices
            hit = topk.eq(y[:, None])
            stats[0] += y.numel()
            stats[1] += hit[:, 0].sum()
            stats[2] += hit.any(dim=1).sum()
            stats[3] += F.cross_entropy(logits, y, reduction="sum")
    finally:
        model.train(was_training)
    if is_distributed():
        world = torch.distributed.get_world_size()
        all_reduce_mean_(stats)
        stats *= world
    n = max(stats[0].item(), 1.0)
    return {"top1": 100.0 * stats[1].item() / n, "top5": 100.0 * stats[2].item() / n,
            "loss": stats[3].item() / n, "n": int(stats[0].item())}


def read_model_file(path: str | os.PathLike) -> tuple[ModelSpec, dict, dict]:
    """(spec, state_dict, payload) from a model file (model.pt) or a training checkpoint."""
    from ..utils.io import load_checkpoint

    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or "spec" not in payload or "state_dict" not in payload:
        raise DataError(f"{path} is not a dcpnas model or training checkpoint (no spec/state_dict; "
                        f"was it written by 'dcpnas train'?)")
    spec = ModelSpec.from_dict(payload["spec"], str(path))
    return spec, payload["state_dict"], payload


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec, dict]:
    """Rebuild the network a model file describes and load its weights; returns (model in eval mode,
    spec, payload)."""
    spec, state, payload = read_model_file(path)
    model = spec.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise DataError(f"{path}: the weights do not fit the stored model spec ({detail})") from None
    return model.to(device).eval(), spec, payload


def load_any(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec]:
    """A model from a model file, a training checkpoint or a packed ``.dcpnas`` file (by content)."""
    from .export import MAGIC, read_packed

    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except FileNotFoundError:
        raise DataError(f"checkpoint not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if head == MAGIC:
        from .export import load_packed

        spec, _, _ = read_packed(path)
        return load_packed(path, device), spec
    model, spec, _ = load_model(path, device)
    return model, spec


def evaluate_file(path: str | os.PathLike, *, dataset: str | None = None, data_dir=None,
                  device: str = "auto", batch_size: int = 256) -> dict:
    """Test top-1/top-5 of a saved model on ``dataset`` (default: its own) plus its cost profile."""
    from ..utils.distributed import select_device
    from .data import test_batches

    dev = select_device(device)
    model, spec = load_any(path, dev)
    name = dataset or spec.dataset
    result = {"checkpoint": str(path), "dataset": name,
              **evaluate(model, test_batches(name, data_dir, spec, dev, batch_size))}
    try:
        from ..metrics.profile import profile_model
    except ImportError:
        return result
    result["profile"] = profile_model(model, spec.input_shape).totals()
    return result
