"""The non-finite guard of search and training: a NaN/Inf loss stops the run, and a state with a NaN/Inf
anywhere (weights, BatchNorm buffers, optimiser moments) is never saved as a checkpoint.

A loss can stay finite while the state goes bad (a BatchNorm ``running_var`` overflowing to inf after a
huge learning rate), so checking losses alone can name a "last good checkpoint" that is not good: both
loops call :func:`check_finite_state` on what they are about to save. The messages are one line and
name the previous checkpoint, which is kept.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import NonFiniteLossError, NonFiniteStateError

__all__ = ["DIVERGED", "kept_checkpoint", "first_non_finite", "check_finite_state", "check_finite_loss",
           "non_finite_loss"]


def kept_checkpoint(path: str | Path | None) -> str:
    """What a stopped run leaves behind, in words: the last checkpoint, or that there is none."""
    if path is not None and Path(path).exists():
        return f"the last good checkpoint is {path}"
    return "no epoch had finished, so there is no checkpoint"


def _tensors(tree: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(tree, torch.Tensor):
        yield prefix or "tensor", tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _tensors(v, f"{prefix}[{i}]")


@torch.no_grad()
def first_non_finite(tree: Any) -> str | None:
    """The name (dotted path) of the first floating-point tensor in ``tree`` (nested dicts, lists,
    tuples) holding a NaN or an Inf, or None when all are finite. One host sync per device."""
    named = [(n, t) for n, t in _tensors(tree) if (t.is_floating_point() or t.is_complex()) and t.numel()]
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, t) in enumerate(named):
        by_device.setdefault(t.device, []).append(i)
    bad = []
    for idx in by_device.values():
        flags = torch.stack([torch.isfinite(named[i][1]).all() for i in idx]).cpu()
        bad += [idx[j] for j in (~flags).nonzero().flatten().tolist()]
    return named[min(bad)][0] if bad else None


def check_finite_state(tree: Any, *, what: str, kept: str, hint: str = "lower the learning rate") -> None:
    """Raise :class:`NonFiniteStateError` when ``tree`` (a state about to be saved as ``what``) holds a
    NaN/Inf; ``kept`` says what is left (see :func:`kept_checkpoint`)."""
    bad = first_non_finite(tree)
    if bad is not None:
        raise NonFiniteStateError(f"{bad} holds NaN/Inf values, so {what} was not saved; {kept} ({hint})")


def non_finite_loss(name: str, value: Any, where: str, kept: str, hint: str | None = None
                    ) -> NonFiniteLossError:
    """The error for a loss that became NaN/Inf (``value``) at ``where``."""
    return NonFiniteLossError(f"{name} became {value} at {where}; {kept}" + (f" ({hint})" if hint else ""))


#: A cross-entropy or KL this large is a diverged run, not a bad batch: with logits of ±100 a
#: wrong prediction costs ~200 nats, and a run at 1e16 (``optim.w.lr=1e6``) is noise with exit 0.
DIVERGED = 1e4


def check_finite_loss(values: dict, keys, *, where: str, kept: str, hint: str | None = None,
                      bounded=()) -> None:
    """Raise :func:`non_finite_loss` for the first of ``keys`` whose value in ``values`` is not
    finite, or of ``bounded`` (cross-entropy-like losses) whose magnitude exceeds ``DIVERGED``."""
    for k in keys:
        if k in values and not math.isfinite(values[k]):
            raise non_finite_loss(f"{k} loss", values[k], where, kept, hint)
    for k in bounded:
        if k in values and abs(values[k]) > DIVERGED:
            raise NonFiniteLossError(f"{k} loss diverged to {values[k]:.3g} (above {DIVERGED:g}) at "
                                     f"{where}; {kept}" + (f" ({hint})" if hint else ""))
