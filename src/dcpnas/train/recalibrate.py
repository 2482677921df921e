"""BatchNorm re-estimation: recompute the running statistics for the weights as they are now.

During step 2 every sign flip of a latent weight ŵ changes the function in a jump, so the running
statistics (an exponential average over the last ~1/momentum batches) describe a mix of recent
networks, not the current one, and eval-mode accuracy lags the train-mode accuracy (on the
Fashion-MNIST preset, test 70.6 % against train 81.3 % in step 2's second epoch). Recomputing them as a
plain average over a few training batches in train mode, with no weight update, removes that lag;
quantisation toolkits do the same after quantising a network.
"""

from __future__ import annotations

from itertools import islice
from typing import Iterable

import torch
import torch.nn as nn

from ..utils.distributed import all_reduce_mean_, autocast_context

__all__ = ["recalibrate_batchnorm"]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable, num_batches: int, *, amp: bool = True) -> int:
    """Reset every BatchNorm's running mean/var and re-estimate them as the average of the batch
    statistics of up to ``num_batches`` batches (train-mode forwards, no gradients). Under
    torch.distributed the estimates are averaged over the processes. Returns the batches used."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or num_batches <= 0:
        return 0
    momenta = [m.momentum for m in bns]
    was_training = model.training
    device = next(model.parameters()).device
    for m in bns:
        m.reset_running_stats()
        m.momentum = None             # cumulative average over the batches seen
    model.train()
    used = 0
    try:
        for x, _ in islice(batches, num_batches):
            with autocast_context(device, amp):
                model(x)
            used += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    # one collective for all statistics (a no-op in a single process)
    all_reduce_mean_([t for m in bns for t in (m.running_mean, m.running_var)])
    return used
