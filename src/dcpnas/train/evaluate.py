"""Top-1/top-5 evaluation of a model, and of a saved model file on a test split (files: ``modelfile.py``)."""

from __future__ import annotations

import os
from typing import Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from ..utils.distributed import all_reduce_mean_, autocast_context, is_distributed
from .modelfile import load_any

__all__ = ["evaluate", "evaluate_file"]


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


def evaluate_file(path: str | os.PathLike, *, dataset: str | None = None, data_dir=None,
                  device: str = "auto", batch_size: int = 256) -> dict:
    """Test top-1/top-5 of a saved model on ``dataset`` (default: its own) plus its cost profile."""
    from ..utils.distributed import select_device
    from .data import test_batches

    from ..utils.budget import check_budget

    dev = select_device(device)
    model, spec = load_any(path, dev)      # the file's spec is checked against the budget at batch 1
    check_budget(spec.estimate(f"evaluating {path} (batch {batch_size})", batch=batch_size), hint="--batch-size")
    name = dataset or spec.dataset
    batches = _checked(test_batches(name, data_dir, spec, dev, batch_size), spec, name)
    result = {"checkpoint": str(path), "dataset": name, **evaluate(model, batches)}
    if result["n"] == 0:
        raise DataError(f"dataset {name!r} has no test images: there is nothing to evaluate {path} on")
    try:
        from ..metrics.profile import profile_model
    except ImportError:
        return result
    result["profile"] = profile_model(model, spec.input_shape).totals()
    return result


def _checked(batches: Iterable, spec, dataset: str) -> Iterator:
    """``batches``, after checking the first one's images have the size the model was trained on (a
    network with global pooling runs on any size, and would report a meaningless accuracy)."""
    it = iter(batches)
    for x, y in it:
        if tuple(x.shape[1:]) != tuple(spec.input_shape):
            raise DataError(f"dataset {dataset!r} has {'x'.join(map(str, x.shape[1:]))} images (CxHxW); the "
                            f"model was trained on {'x'.join(map(str, spec.input_shape))}")
        yield x, y
        break
    yield from it
