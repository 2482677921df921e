"""Devices, seeding, mixed precision and torch.distributed helpers (torchrun, DDP).

Every collective here is a no-op in a single process, so the search and training loops call them
unconditionally. Architecture-parameter gradients are averaged with :func:`all_reduce_mean_` by the
search loop (DDP only averages the gradients of the weight step).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.distributed as dist

from ..errors import DcpnasError

__all__ = [
    "DistEnv",
    "select_device",
    "init_distributed",
    "is_distributed",
    "all_reduce_mean_",
    "broadcast_",
    "barrier",
    "sync_batchnorm_stats",
    "cleanup",
    "seed_everything",
    "autocast_context",
]

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: global ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    is_main: bool = True

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a ``torch.device``.

    Asking for CUDA without a usable GPU (or for a GPU index that does not exist) raises :class:`DcpnasError`.
    """
    if isinstance(device, torch.device):
        device = str(device)
    spec = str(device).strip().lower()
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    match = _DEVICE_RE.match(spec)
    if not match:
        raise DcpnasError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DcpnasError(f"device {device!r} requested but CUDA is not available (use --device cpu or auto)")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise DcpnasError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(spec)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DcpnasError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str | torch.device = "auto", *, timeout_s: float = 1800.0) -> DistEnv:
    """Join the process group when launched by torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set).

    Uses NCCL on CUDA (each process on ``cuda:LOCAL_RANK``) and Gloo on CPU. Without torchrun (or with a
    world size of 1) returns a single-process :class:`DistEnv` on :func:`select_device` ``(device)``.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistEnv(device=select_device(device))
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = select_device(device)
    if dev.type == "cuda":
        # Under torchrun the GPU is decided by the local rank, whatever index was asked for.
        if local_rank >= torch.cuda.device_count():
            raise DcpnasError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) exist")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(var):
                raise DcpnasError(f"WORLD_SIZE={world_size} but {var} is not set (launch with torchrun)")
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, is_main=rank == 0)


def is_distributed() -> bool:
    """True when a process group with more than one member is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _as_list(tensors: torch.Tensor | Iterable[torch.Tensor | None]) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    return [t for t in tensors if t is not None]  # missing gradients are simply skipped


def _grouped(tensors: list[torch.Tensor]) -> dict[tuple[torch.device, torch.dtype], list[torch.Tensor]]:
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return groups


def _collective_(tensors: list[torch.Tensor], op) -> None:
    # One flat buffer per (device, dtype): a single collective call instead of one per tensor.
    for group in _grouped(tensors).values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        op(flat)
        offset = 0
        for t in group:
            n = t.numel()
            with torch.no_grad():
                t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


def all_reduce_mean_(tensors: torch.Tensor | Iterable[torch.Tensor | None]) -> None:
    """Average floating-point tensors over all processes, in place (no-op when not distributed)."""
    items = _as_list(tensors)
    if not is_distributed() or not items:
        return
    for t in items:
        if not t.is_floating_point():
            raise TypeError(f"all_reduce_mean_ needs floating-point tensors, got {t.dtype}")
    world = dist.get_world_size()

    def op(flat: torch.Tensor) -> None:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)  # Gloo has no AVG: sum, then divide
        flat.div_(world)

    _collective_(items, op)


def broadcast_(tensors: torch.Tensor | Iterable[torch.Tensor | None], src: int = 0) -> None:
    """Copy rank ``src``'s values into every process's tensors, in place (no-op when not distributed)."""
    items = _as_list(tensors)
    if not is_distributed() or not items:
        return
    _collective_(items, lambda flat: dist.broadcast(flat, src=src))


@torch.no_grad()
def sync_batchnorm_stats(*modules: torch.nn.Module) -> None:
    """Make the buffers of ``modules`` identical on every process: the one policy of search and training.

    Floating-point buffers (BatchNorm running mean and variance) are averaged over the processes: each
    rank updated them on its own shard, and the mean of the shard estimates is the estimate over all of
    them (rank 0's alone would discard the others' batches). The other buffers (``num_batches_tracked``
    counters, equal on every rank anyway) are broadcast from rank 0. A no-op in a single process.
    """
    buffers = [b for m in modules for b in m.buffers()]
    all_reduce_mean_([b for b in buffers if b.is_floating_point()])
    broadcast_([b for b in buffers if not b.is_floating_point()])


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        # Naming the device avoids NCCL guessing (and warning about) which GPU this rank uses.
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices).

    ``deterministic=True`` also asks for deterministic kernels (``torch.use_deterministic_algorithms(True,
    warn_only=True)``, cuDNN deterministic and not benchmarking); ``False`` leaves those flags alone.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy only takes 32-bit seeds
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic; harmless when already set or on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def tune_backends(device: str | torch.device, deterministic: bool = False) -> None:
    """Let cuDNN pick its fastest convolution algorithms on CUDA (a search's and a training's shapes
    are fixed, so the one-off benchmarking pays back); deterministic runs keep it off
    (``seed_everything``)."""
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    if device_type == "cuda" and not deterministic:
        torch.backends.cudnn.benchmark = True


def autocast_context(device: str | torch.device, enabled: bool = True):
    """bf16 autocast on CUDA when ``enabled``; a ``nullcontext`` on other devices (CPU runs stay fp32)."""
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    if enabled and device_type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# Devices whose convolution and pooling kernels run faster on NHWC tensors. CPU belongs here: oneDNN's
# depthwise (dilated) convs and the 3×3 pools of every mixed op are faster in channels-last
# (``bench_search_round.py --memory-format both``, ``bench_train_step.py``; benchmarks/README.md).
CHANNELS_LAST_DEVICES = ("cuda", "cpu")


def use_channels_last(device: str | torch.device, enabled: bool = True) -> bool:
    """Whether models and batches on ``device`` go channels-last (the one place this is decided)."""
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    return bool(enabled) and device_type in CHANNELS_LAST_DEVICES
