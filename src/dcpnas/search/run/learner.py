"""A supernet with what trains it: weight optimiser + cosine schedule, α optimiser, decoupled state.

The Parent (w, α) and the Child (ŵ and β, α̂) are each one ``Learner``; DARTS and BNAS use one.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ...binary import BinaryConv2d
from ...space import NUM_EDGES, PRIMITIVES, Supernet
from ...utils.distributed import broadcast_, use_channels_last
from ..config import SearchConfig, WeightOptimConfig
from ..maths.decoupled import DecoupledOptimization

__all__ = ["Learner", "build_supernet", "build_learner", "init_child_from_parent"]


def build_supernet(kind: str, cfg: SearchConfig, in_channels: int, num_classes: int,
                   device: torch.device) -> Supernet:
    """The Parent (``kind="parent"``) or the 1-bit Child supernet of ``cfg.supernet`` on ``device``."""
    s = cfg.supernet
    net = Supernet(kind, in_channels=in_channels, num_classes=num_classes, C=s.C, layers=s.layers,
                   layout=cfg.layout, scope=s.scope, alpha_init_std=s.alpha_init_std,
                   partial_channels=s.partial_channels, edge_normalization=s.edge_normalization)
    if s.alpha_perturbation:
        g = torch.Generator().manual_seed(cfg.seed + 7919 + 1_000_003 * s.alpha_perturbation_seed)
        with torch.no_grad():
            for a in net.arch_parameters():
                a.add_(s.alpha_perturbation * torch.randn(a.shape, generator=g, dtype=a.dtype))
    net = net.to(device)
    if use_channels_last(device, cfg.channels_last):
        net = net.to(memory_format=torch.channels_last)
    # Same seed on every rank makes these equal already; the broadcast makes it a guarantee.
    broadcast_(list(net.parameters()) + [b for b in net.buffers() if b.is_floating_point()])
    return net


def _weight_optimizer(params, oc: WeightOptimConfig) -> torch.optim.Optimizer:
    # foreach on every device: torch picks the per-tensor loop on CPU by default, and a 1-bit
    # supernet holds thousands of small tensors (ŵ, β, BN, PReLU), where one fused pass is faster.
    if oc.optimizer == "adam":
        return torch.optim.Adam(params, lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay,
                                foreach=True)
    return torch.optim.SGD(params, lr=oc.lr, momentum=oc.momentum, weight_decay=oc.weight_decay,
                           foreach=True)


class Learner:
    """One supernet and its optimisers. ``epochs`` counts finished epochs (drives the lr schedule)."""

    def __init__(self, name: str, net: Supernet, w_opt: torch.optim.Optimizer,
                 w_sched: torch.optim.lr_scheduler.LRScheduler,
                 a_opt: Optional[torch.optim.Optimizer],
                 decoupled: Optional[DecoupledOptimization]):
        self.name, self.net = name, net
        self.w_opt, self.w_sched, self.a_opt, self.decoupled = w_opt, w_sched, a_opt, decoupled
        self.epochs = 0

    @property
    def alphas(self) -> list[nn.Parameter]:
        return self.net.arch_parameters()

    @property
    def weights(self) -> list[nn.Parameter]:
        return self.net.weight_parameters()

    def weight_lr(self) -> float:
        return float(self.w_opt.param_groups[0]["lr"])

    def arch_lr(self) -> float:
        return float(self.a_opt.param_groups[0]["lr"]) if self.a_opt is not None else 0.0

    def end_epoch(self) -> None:
        self.w_sched.step()
        self.epochs += 1

    def forget_backtrack(self) -> None:
        """Drop the pending ψ̃ update after α was overwritten by inheritance (its chain is cut)."""
        if self.decoupled is not None:
            state = self.decoupled.state_dict()
            state["pending"] = state["alpha_prev"] = None
            self.decoupled.load_state_dict(state)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
                "w_sched": self.w_sched.state_dict(),
                "a_opt": None if self.a_opt is None else self.a_opt.state_dict(),
                "decoupled": None if self.decoupled is None else self.decoupled.state_dict(),
                "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.w_sched.load_state_dict(state["w_sched"])
        if self.a_opt is not None:
            self.a_opt.load_state_dict(state["a_opt"])
        if self.decoupled is not None:
            self.decoupled.load_state_dict(state["decoupled"])
        self.epochs = int(state["epochs"])


def build_learner(kind: str, cfg: SearchConfig, in_channels: int, num_classes: int,
                  device: torch.device, *, epochs: int, search_arch: bool = True,
                  decoupled: bool = False) -> Learner:
    """A Parent or Child learner whose weight lr decays (cosine) over ``epochs`` epochs.

    search_arch: build the α optimiser (Adam); decoupled: with decoupled optimisation (if enabled).
    """
    net = build_supernet(kind, cfg, in_channels, num_classes, device)
    oc = cfg.optim.w if kind == "parent" else cfg.optim.w_hat
    w_opt = _weight_optimizer(net.weight_parameters(), oc)
    w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=max(1, epochs), eta_min=oc.lr_min)
    a_opt = dec = None
    if search_arch:
        ac = cfg.optim.alpha
        a_opt = torch.optim.Adam(net.arch_parameters(), lr=ac.lr, betas=ac.betas,
                                 weight_decay=ac.weight_decay)
        if decoupled and cfg.decoupled.enabled:
            dc = cfg.decoupled
            dec = DecoupledOptimization(NUM_EDGES, len(PRIMITIVES), psi_lr=dc.psi_lr or ac.lr,
                                        psi_init=dc.psi_init, tau=dc.tau, rank_scope=dc.rank_scope,
                                        include_parameter_free=dc.include_parameter_free,
                                        parametrization=dc.parametrization, device=device)
    return Learner(kind, net, w_opt, w_sched, a_opt, dec)


@torch.no_grad()
def init_child_from_parent(child: Supernet, parent: Supernet) -> int:
    """ŵ ← w once (docs/METHOD.md#decision-weights): copy every conv / linear weight in module order, re-init β.

    The Parent's and the Child's ops hold their convolutions in the same order and shapes (the
    1-bit ops add BN/PReLU around them), so conv k of one is conv k of the other. Returns the
    number of tensors copied.
    """
    def layers(net):
        return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    src, dst = layers(parent), layers(child)
    if len(src) != len(dst):
        raise RuntimeError(f"parent has {len(src)} conv/linear layers, child {len(dst)}")
    for a, b in zip(src, dst):
        if a.weight.shape != b.weight.shape:
            raise RuntimeError(f"layer shapes differ: {tuple(a.weight.shape)} vs {tuple(b.weight.shape)}")
        b.weight.copy_(a.weight)
        if a.bias is not None and b.bias is not None:
            b.bias.copy_(a.bias)
        if isinstance(b, BinaryConv2d):
            b.reset_beta()
    return len(src)
