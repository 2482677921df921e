"""The real-valued teacher of the distillation loss: none, a checkpoint, self-trained, or torchvision.

Every teacher comes back frozen (eval mode, no gradients) on the training device.
"""

from __future__ import annotations

import copy
import os
import socket
import urllib.error
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..errors import ConfigError, DataError, DcpnasError, RunFinished
from .config import LossConfig, TeacherConfig, TrainConfig
from .spec import ModelSpec

__all__ = ["build_teacher", "teacher_config", "torchvision_teacher", "TEACHER_DIR"]

#: Sub-folder of a run directory where ``teacher.kind=self`` trains and caches its teacher.
TEACHER_DIR = "teacher"


def _freeze(model: nn.Module, device) -> nn.Module:
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_fits(source: str, spec: ModelSpec, num_classes: int, in_channels: int) -> None:
    if num_classes != spec.num_classes or in_channels != spec.in_channels:
        raise ConfigError(f"teacher {source} has {num_classes} classes and {in_channels} input channels; "
                          f"the student needs {spec.num_classes} and {spec.in_channels}")


def teacher_config(cfg: TrainConfig) -> TrainConfig:
    """The config of the real-valued network ``teacher.kind=self`` trains: the student's genotype and
    data, real-valued, one step of ``teacher.epochs`` epochs with label CE, at ``teacher.size`` (or
    the student's size/C/layers)."""
    t: TeacherConfig = cfg.teacher
    out = copy.deepcopy(cfg)
    out.model.binary = False
    if t.size is not None:
        out.model.size, out.model.C, out.model.layers = t.size, None, None
    if t.C is not None:
        out.model.C = t.C
    if t.layers is not None:
        out.model.layers = t.layers
    out.two_step, out.epochs, out.step1_epochs = False, t.epochs, None
    out.teacher = TeacherConfig()
    out.loss = LossConfig(label_smoothing=cfg.loss.label_smoothing)
    out.optim.weight_decay = t.weight_decay
    if t.lr is not None:
        out.optim.lr = t.lr
    out.stop_after_epochs = 0
    return out


def _self_teacher(cfg: TrainConfig, out_dir: Path, train_fn: Callable, dataset) -> nn.Module:
    """Train (or resume, or reuse) the real-valued teacher in ``out_dir/teacher``."""
    from .modelfile import load_model

    folder = out_dir / TEACHER_DIR
    model_file = folder / "model.pt"
    if not model_file.exists():
        try:
            train_fn(teacher_config(cfg), folder, resume=True, dataset=dataset, role="teacher")
        except RunFinished:
            raise DcpnasError(f"the teacher run in {folder} is finished but its {model_file.name} is missing; "
                              f"restore it or remove {folder} to train the teacher again") from None
    model, _, _ = load_model(model_file)
    return model


def _checkpoint_teacher(path: str) -> nn.Module:
    from .modelfile import load_model

    model, spec, _ = load_model(path)
    if spec.binary:
        # Allowed (it still gives soft targets), but almost certainly a mistake worth saying.
        from ..utils.logging import console

        console(f"note: teacher checkpoint {path} is a 1-bit network")
    return model


def _download_error(arch: str, url: str, exc: BaseException) -> DcpnasError:
    reason = getattr(exc, "reason", None) or exc
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return DcpnasError(f"cannot download the torchvision {arch} teacher weights from {url} ({reason}); "
                       f"offline? put the file at {cache} or use teacher.kind=checkpoint")


def torchvision_teacher(arch: str = "resnet34", timeout: float = 60.0) -> nn.Module:
    """An ImageNet-pretrained torchvision model; the weights come from the torch hub cache or are
    downloaded with a socket timeout (a failed or hung download is a one-line DcpnasError)."""
    try:
        from torchvision.models import get_model, get_model_weights
    except ImportError:
        raise DcpnasError("teacher.kind=torchvision needs torchvision: pip install 'dcpnas[vision]'") from None
    try:
        weights = get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(f"teacher.arch={arch!r} is not a torchvision classification model "
                          f"with pretrained weights") from None
    model = get_model(arch, weights=None)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False,
                                                   check_hash=True)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise _download_error(arch, weights.url, e) from None
    except RuntimeError as e:  # torch.hub's hash check
        raise DataError(f"torchvision {arch} weights are corrupt ({str(e).splitlines()[0]}); delete the "
                        f"cached file in {torch.hub.get_dir()}/checkpoints and retry") from None
    finally:
        socket.setdefaulttimeout(previous)
    model.load_state_dict(state)
    return model


def build_teacher(cfg: TrainConfig, spec: ModelSpec, out_dir: Path, device, *,
                  train_fn: Optional[Callable] = None, dataset=None) -> Optional[nn.Module]:
    """The frozen teacher ``cfg.teacher`` asks for, or None for ``kind=none``.

    ``train_fn(cfg, out_dir, resume=, dataset=, role=)`` trains the ``self`` teacher (the trainer
    passes itself; every process calls it, so a torchrun job trains the teacher with DDP too).
    """
    kind = cfg.teacher.kind
    if kind == "none":
        return None
    if kind == "checkpoint":
        model = _checkpoint_teacher(cfg.teacher.checkpoint)
        out_features, in_channels = _io_sizes(model)
        _check_fits(f"checkpoint {cfg.teacher.checkpoint}", spec, out_features, in_channels)
    elif kind == "self":
        if train_fn is None:
            raise ValueError("teacher.kind=self needs train_fn")
        model = _self_teacher(cfg, Path(out_dir), train_fn, dataset)
    else:
        model = torchvision_teacher(cfg.teacher.arch, cfg.teacher.download_timeout)
        out_features, in_channels = _io_sizes(model)
        _check_fits(f"torchvision {cfg.teacher.arch}", spec, out_features, in_channels)
    return _freeze(model, device)


def _io_sizes(model: nn.Module) -> tuple[int, int]:
    """(classes, input channels) of a classifier: its first conv's inputs, its last linear's outputs."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return (linears[-1].out_features if linears else -1, convs[0].in_channels if convs else -1)
