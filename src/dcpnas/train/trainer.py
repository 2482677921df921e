"""Final training of a derived network: steps, distillation, DDP, per-epoch checkpoints, resume.

``train(cfg, out_dir)`` runs every step of :func:`~dcpnas.train.stages.plan_stages` and writes into
``out_dir``: ``config.json``, ``log.jsonl`` (one record per epoch), ``checkpoint.pt`` (after every
epoch, atomically), ``step1.pt`` (two-step runs), ``model.pt`` (the final network), ``summary.json``
and ``curves.png``. With ``resume=True`` it continues from ``checkpoint.pt``: model,
optimizer, schedule, stage, epoch, step, RNG and batch state, so the run ends with the same weights
as an uninterrupted one (on the same device and thread count).

Under torchrun every process calls ``train``: the model is wrapped in DistributedDataParallel, each
process takes its shard of every epoch, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..binary import binary_convs
from ..config import save_config, to_dict
from ..errors import ConfigError, DcpnasError, WriteError
from ..utils.distributed import (DistEnv, all_reduce_mean_, autocast_context, barrier, init_distributed,
                                 seed_everything, sync_batchnorm_stats, tune_backends, use_channels_last)
from ..utils.finite import check_finite_state, kept_checkpoint, non_finite_loss
from ..utils.io import atomic_write_text, os_reason
from ..utils.logging import JsonlLogger, console
from ..utils.progress import Progress
from ..utils.budget import check_budget
from ..utils.rundir import check_run_dir, claim_run_dir, mark_finished
from ..utils.runstate import check_finite_config, check_resume_config, restoring, set_rng_state
from .augment import cutout_
from .checkpoint import CHECKPOINT, load_state, save_model, save_state
from .config import TrainConfig
from .data import TrainData, build_data
from .evaluate import evaluate
from .losses import TrainLoss
from .optim import CosineSchedule, build_optimizer
from .recalibrate import recalibrate_batchnorm
from .spec import ModelSpec
from .stages import Stage, enter_stage, plan_stages
from .summary import console_epoch, final_metrics, write_summary
from .teacher import build_teacher

__all__ = ["train", "TrainResult", "model_spec"]

#: Config keys that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("device", "threads", "stop_after_epochs", "check_every", "data.data_dir", "data.workers",
                     "data.download")


@dataclass
class TrainResult:
    model: nn.Module                   # the trained network (eval mode), unwrapped from DDP
    spec: ModelSpec
    metrics: dict                      # final test top1/top5/loss
    out_dir: Path
    completed: bool                    # False when stopped early by stop_after_epochs


def _genotype(cfg: TrainConfig):
    from ..space.genotype import load_genotype

    if not cfg.model.genotype:
        raise ConfigError("no genotype: pass --genotype (a name, a file or 'Genotype(...)') "
                          "or set model.genotype")
    return load_genotype(cfg.model.genotype)


def model_spec(cfg: TrainConfig, data: TrainData) -> ModelSpec:
    """The spec of the network ``cfg`` trains on ``data``."""
    from ..space.network import SIZES

    size = SIZES[cfg.model.size]
    return ModelSpec(genotype=_genotype(cfg).to_dict(), C=cfg.model.C or size.C,
                     layers=cfg.model.layers or size.layers, layout=cfg.layout, scope=cfg.model.scope,
                     binary=cfg.model.binary, in_channels=data.in_channels, num_classes=data.num_classes,
                     image_size=data.image_size, dataset=cfg.data.dataset, mean=tuple(data.mean),
                     std=tuple(data.std), size=cfg.model.size,
                     stem_multiplier=cfg.model.stem_multiplier)


# -- helpers -----------------------------------------------------------------------------------
def _check_same_config(saved: dict, cfg: TrainConfig, path: Path) -> None:
    check_resume_config(saved, cfg, runtime_keys=RESUMABLE_CHANGES, where=str(path))


def _reseed(seed: int, rank: int, stage: int, epoch: int) -> None:
    """Global torch RNG (drop-path masks) from (seed, rank, stage, epoch): resumable and per-rank."""
    s = np.random.SeedSequence([seed, rank, stage, epoch]).generate_state(1, dtype=np.uint64)[0]
    torch.manual_seed(int(s) & 0x7FFF_FFFF_FFFF_FFFF)


def _cutout_generator(seed: int, rank: int, stage: int, epoch: int) -> torch.Generator:
    s = np.random.SeedSequence([seed, rank, stage, epoch, 1]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(s) & 0x7FFF_FFFF_FFFF_FFFF)


@contextlib.contextmanager
def _main_first(env: DistEnv, enabled: bool = True):
    """Rank 0 runs the block first, the other ranks after it (e.g. a download into a shared cache)."""
    if enabled and not env.is_main:
        barrier()
    yield
    if enabled and env.is_main:
        barrier()


def _wrap(model: nn.Module, env: DistEnv) -> nn.Module:
    if not env.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[env.device] if env.device.type == "cuda" else None)


@dataclass
class _RunContext:
    """What every epoch of a run reads (the run's fixed parts; the loop's state is passed along)."""

    cfg: TrainConfig
    env: DistEnv
    data: TrainData
    spec: ModelSpec
    model: nn.Module
    loss_fn: TrainLoss
    teacher: Optional[nn.Module]
    role: str
    out: Path
    logger: JsonlLogger

    @property
    def ckpt_path(self) -> Path:
        return self.out / CHECKPOINT


def _train_epoch(ctx: _RunContext, stage: Stage, net: nn.Module, optimizer, schedule, epoch: int,
                 data_epoch: int, step: int) -> tuple[dict, int]:
    """One pass over this process's shard (``epoch`` in the stage; ``data_epoch`` counts over all
    stages and picks the batch order). Returns (averaged stats, global step after the epoch)."""
    cfg, device, model = ctx.cfg, ctx.env.device, ctx.model
    net.train()
    gen = _cutout_generator(cfg.seed, ctx.env.rank, stage.number, epoch) if cfg.data.cutout else None
    sums = torch.zeros(3, dtype=torch.float64, device=device)       # loss·n, correct, n
    part_sums: dict[str, torch.Tensor] = {}
    bad = torch.zeros((), dtype=torch.bool, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    teacher = ctx.teacher if ctx.loss_fn.distill_weight else None
    total = ctx.data.steps_per_epoch()
    with Progress(total, f"{ctx.role} {stage.name} epoch {epoch + 1}/{stage.epochs}", unit="step") as progress:
        for i, (x, y) in enumerate(ctx.data.train_batches(data_epoch)):
            if gen is not None:
                cutout_(x, cfg.data.cutout, gen)
            with autocast_context(device, cfg.amp):
                logits = net(x)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x)
                else:
                    t_logits = None
            loss, parts = ctx.loss_fn(logits, y, t_logits, model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
                bad |= ~torch.isfinite(norm)
            bad |= ~torch.isfinite(loss.detach())
            optimizer.step()
            schedule.step()
            step += 1
            n = y.numel()
            sums += torch.stack([loss.detach().double() * n,
                                 (logits.detach().argmax(1) == y).sum().double(),
                                 torch.tensor(float(n), dtype=torch.float64, device=device)])
            for k, v in parts.items():
                part_sums[k] = part_sums.get(k, 0) + v.double() * n
            progress.update()
            if (i + 1) % cfg.check_every == 0 or i + 1 == total:
                _check_finite(ctx, stage, bad, epoch, step)
                progress.set_postfix(loss=(sums[0] / sums[2]).item(), lr=schedule.lr)
    all_reduce_mean_([sums] + list(part_sums.values()))
    stats = {"train_loss": (sums[0] / sums[2]).item(), "train_top1": 100.0 * (sums[1] / sums[2]).item()}
    stats.update({f"train_{k}": (v / sums[2]).item() for k, v in part_sums.items()})
    return stats, step


def _check_finite(ctx: _RunContext, stage: Stage, bad: torch.Tensor, epoch: int, step: int) -> None:
    """Stop every process together when any of them saw a non-finite loss or gradient norm."""
    flag = bad.float().reshape(1)
    all_reduce_mean_(flag)
    if flag.item() == 0.0:
        return
    raise non_finite_loss("the loss", "non-finite", f"{ctx.role} {stage.name} epoch {epoch + 1} by step {step}",
                          kept_checkpoint(ctx.ckpt_path), hint="lower optim.lr or set optim.grad_clip")


# -- one step (stage) of the recipe ----------------------------------------------------------------
@dataclass
class _Position:
    """Where the run stands: the stage/epoch to start from, the global step, the epoch records."""

    stage: int = 0
    epoch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    epochs_here: int = 0               # epochs run by this process (for stop_after_epochs)


def _run_stage(ctx: _RunContext, stages: list[Stage], si: int, pos: _Position, state: Optional[dict]) -> bool:
    """Run (the rest of) stage ``si``; ``state``: the checkpoint when resuming inside it.
    Returns False when stop_after_epochs stopped the run."""
    cfg, env, model, stage = ctx.cfg, ctx.env, ctx.model, stages[si]
    first_epoch = pos.epoch if si == pos.stage else 0
    enter_stage(model, stage, fresh=first_epoch == 0)
    net = _wrap(model, env)
    lr, spe = cfg.scaled_lr * stage.lr_scale, ctx.data.steps_per_epoch()
    optimizer = build_optimizer(model, cfg.optim, lr, stage.weight_decay)
    schedule = CosineSchedule(optimizer, lr, cfg.optim.min_lr, spe * stage.epochs,
                              round(cfg.optim.warmup_epochs * spe))
    if state is not None and first_epoch > 0:
        with restoring(ctx.ckpt_path):
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
    offset = sum(s.epochs for s in stages[:si])
    for epoch in range(first_epoch, stage.epochs):
        t0 = time.monotonic()
        _reseed(cfg.seed, env.rank, stage.number, epoch)
        model.set_drop_path(cfg.model.drop_path * epoch / stage.epochs)
        lr_start = schedule.lr
        stats, pos.step = _train_epoch(ctx, stage, net, optimizer, schedule, epoch, offset + epoch, pos.step)
        sync_batchnorm_stats(model)
        last = epoch + 1 == stage.epochs
        test = {}
        if last or (epoch + 1) % cfg.eval_every == 0:
            if stage.binary_weights and cfg.bn_recalibration:
                # the running statistics lag the sign flips of ŵ (see recalibrate.py)
                model.set_drop_path(0.0)
                recalibrate_batchnorm(model, ctx.data.train_batches(offset + epoch), cfg.bn_recalibration,
                                      amp=cfg.amp)
            test = {f"test_{k}": v for k, v in evaluate(model, ctx.data.test_batches(), amp=cfg.amp).items()
                    if k != "n"}
        record = {"stage": stage.number, "step_name": stage.name, "epoch": epoch + 1,
                  "global_epoch": offset + epoch + 1, "step": pos.step, "lr": lr_start, **stats, **test,
                  "epoch_time": time.monotonic() - t0}
        pos.history.append(record)
        # Every rank checks (the states are equal after the sync) so that all stop together.
        check_finite_state({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                           what=f"the checkpoint after {stage.name} epoch {epoch + 1}",
                           kept=kept_checkpoint(ctx.ckpt_path), hint="lower optim.lr or set optim.grad_clip")
        if env.is_main:
            save_state(ctx.ckpt_path, spec=ctx.spec.replace(binary_weights=stage.binary_weights), model=model,
                       optimizer=optimizer, schedule=schedule, stage=si, epoch=epoch + 1, step=pos.step,
                       data_state=ctx.data.state_dict(), history=pos.history, config=to_dict(cfg))
            ctx.logger.log(record)
            console_epoch(ctx.role, stage, record)
        barrier()
        pos.epochs_here += 1
        if cfg.stop_after_epochs and pos.epochs_here >= cfg.stop_after_epochs and not (
                last and si == len(stages) - 1):
            console(f"{ctx.role}: stopped after {pos.epochs_here} epoch(s) (stop_after_epochs); "
                    f"continue with --resume")
            return False
    if stage.name == "step1" and env.is_main:
        save_model(ctx.out / "step1.pt", ctx.spec.replace(binary_weights=False), model, final_metrics(pos.history))
    return True


# -- the run -----------------------------------------------------------------------------------
def train(cfg: TrainConfig, out_dir, *, resume: bool = False, dataset=None, env: Optional[DistEnv] = None,
          role: str = "train") -> TrainResult:
    """Train the network of ``cfg`` into ``out_dir`` (see the module docstring).

    ``dataset``: an already loaded ImageDataset (the self-trained teacher shares the student's);
    ``env``: the process's DistEnv (default: ``init_distributed(cfg.device)``); ``role`` names the
    run in messages (``train`` or ``teacher``).
    """
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, Path(out_dir), resume=resume, dataset=dataset, env=env, role=role)
    finally:
        torch.set_num_threads(threads)


def _check_checkpoint(out: Path, resume: bool, strict: bool) -> None:
    """Refuse to overwrite a run, and (``strict``) to resume one that is not there. The self-trained
    teacher is not strict: it resumes its run when there is one and starts it otherwise."""
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise DcpnasError(f"{out} already holds a training run ({CHECKPOINT}); pass --resume to continue "
                          f"it or choose another --out")
    if resume and strict and not ckpt_path.exists():
        raise DcpnasError(f"nothing to resume in {out}: {ckpt_path} does not exist (no epoch finished; "
                          f"start the run without --resume)")


def _open_run(cfg: TrainConfig, out: Path, resume: bool, env: DistEnv, role: str) -> Optional[dict]:
    """The checkpoint to resume from (None for a new run), once the directory is claimed; writes
    config.json."""
    _check_checkpoint(out, resume, role != "teacher")   # again, under the lock
    state = None
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        state = load_state(ckpt_path)
        _check_same_config(state["config"], cfg, ckpt_path)
    if env.is_main and state is None:  # a resumed run keeps the config.json it was started with
        save_config(cfg, out / "config.json", {"world_size": env.world_size, "role": role})
    return state


def _init_from(model: nn.Module, spec: ModelSpec, path: str, reset_beta: bool) -> None:
    """Load the weights of a model file into ``model`` (the same network; its binary mode aside).

    Starting binary weights from a step-1 model (real weights) is the switch of the two-step
    recipe run as a separate job (as the authors do): β ← mean|ŵ| then, when ``reset_beta``.
    """
    from .modelfile import read_model_file

    other, state, _ = read_model_file(path, purpose="model.init_from")
    keys = ("genotype", "C", "layers", "layout", "scope", "binary", "in_channels", "num_classes")
    for key in keys:
        if getattr(other, key) != getattr(spec, key):
            raise ConfigError(f"model.init_from={path}: its {key} is {getattr(other, key)!r}, this run's is "
                              f"{getattr(spec, key)!r}")
    with restoring(path):   # same spec, but a crafted file's tensors may still not fit
        model.load_state_dict(state)
    if reset_beta and other.binary and not other.binary_weights:
        for conv in binary_convs(model):
            conv.reset_beta()


def _restore(state: Optional[dict], model: nn.Module, data: TrainData, out: Path, env: DistEnv) -> _Position:
    if state is None:
        return _Position()
    with restoring(out / CHECKPOINT):
        model.load_state_dict(state["state_dict"])
        set_rng_state(state["rng"])
        data.load_state_dict(state["data"])
    history = list(state["history"])
    if env.is_main:  # the log is rebuilt from the checkpoint: no duplicated or lost epochs
        atomic_write_text(out / "log.jsonl", "".join(_json_line(r) for r in history))
    return _Position(stage=state["stage"], epoch=state["epoch"], step=state["step"], history=history)


def _train(cfg: TrainConfig, out: Path, *, resume: bool, dataset, env: Optional[DistEnv], role: str) -> TrainResult:
    # Inputs first, reading only: nothing is written into ``out`` until they are known to be good.
    check_finite_config(cfg)
    _genotype(cfg)  # a bad genotype fails before any data is loaded
    strict = role != "teacher"
    check_run_dir(out, "train", resume=resume and strict)
    _check_checkpoint(out, resume, strict)
    env = env or init_distributed(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    if dataset is None and cfg.data.dataset != "imagenet":
        from ..data import load_dataset

        dataset = load_dataset(cfg.data.dataset, cfg.data.data_dir, download=cfg.data.download)
    data = build_data(cfg, env, dataset)
    spec = model_spec(cfg, data)
    check_budget(spec.estimate(f"the {role} network (model.C={spec.C}, model.layers={spec.layers}, "
                               f"{spec.image_size}px, batch {cfg.data.batch_size})",
                               batch=max(cfg.data.batch_size // env.world_size, 1), training=True),
                 hint="model.C, model.layers or data.batch_size")
    from .modelfile import read_model_file

    if cfg.model.init_from:  # readable, and a model file (not a packed one), before anything is written
        read_model_file(cfg.model.init_from, purpose="model.init_from")
    if cfg.teacher.kind == "checkpoint" and cfg.teacher.checkpoint:
        read_model_file(cfg.teacher.checkpoint, purpose="teacher.checkpoint")
    with claim_run_dir(out, "train", resume=resume and strict, enabled=env.is_main) as run:
        try:
            result = _train_claimed(cfg, out, resume, dataset, env, role, data, spec)
            if result.completed:
                mark_finished(run)
            return result
        except OSError as exc:  # a writer without its own WriteError (curves, summary helpers)
            raise WriteError(exc.filename or out, os_reason(exc), kept_checkpoint(out / CHECKPOINT)) from None


def _train_claimed(cfg: TrainConfig, out: Path, resume: bool, dataset, env: DistEnv, role: str,
                   data: TrainData, spec: ModelSpec) -> TrainResult:
    state = _open_run(cfg, out, resume, env, role)
    with _main_first(env, cfg.teacher.kind == "torchvision"):  # one download, then the cache
        teacher = build_teacher(cfg, spec, out, env.device, train_fn=train, dataset=dataset)
    teacher_metrics = None
    if teacher is not None:
        teacher_metrics = evaluate(teacher, data.test_batches(), amp=cfg.amp)
        console(f"{role}: teacher ({cfg.teacher.kind}) test top-1 {teacher_metrics['top1']:.2f}%")

    seed_everything(cfg.seed, cfg.deterministic)
    tune_backends(env.device, cfg.deterministic)
    model = spec.build().to(env.device)
    if use_channels_last(env.device, cfg.channels_last):
        model = model.to(memory_format=torch.channels_last)
    stages = plan_stages(cfg)
    if cfg.model.init_from and state is None:
        _init_from(model, spec, cfg.model.init_from, reset_beta=cfg.reset_beta and stages[0].binary_weights)
    pos = _restore(state, model, data, out, env)
    if state is not None:
        console(f"{role}: resuming {out} after {len(pos.history)} epoch(s)")
    console(f"{role}: {spec.dataset} C={spec.C} layers={spec.layers} "
            f"{'1-bit' if spec.binary else 'real-valued'}, steps {[s.name for s in stages]}, "
            f"{data.steps_per_epoch()} batches/epoch, lr {cfg.scaled_lr:.3g}, {env.world_size} process(es) "
            f"on {env.device}")
    t_run = time.monotonic()
    with JsonlLogger(out / "log.jsonl", enabled=env.is_main) as logger:
        ctx = _RunContext(cfg, env, data, spec, model, TrainLoss(cfg.loss, has_teacher=teacher is not None),
                          teacher, role, out, logger)
        for si in range(pos.stage, len(stages)):
            if not _run_stage(ctx, stages, si, pos, state if si == pos.stage else None):
                return TrainResult(model.eval(), spec, final_metrics(pos.history), out, completed=False)
    final_spec = spec.replace(binary_weights=stages[-1].binary_weights)
    metrics = final_metrics(pos.history)
    if env.is_main:
        try:
            save_model(out / "model.pt", final_spec, model, metrics)
            write_summary(out, cfg, final_spec, model, pos.history, stages, teacher_metrics, role,
                          time.monotonic() - t_run)
        except WriteError as exc:   # the training itself is safe in its checkpoint
            raise WriteError(exc.path, exc.reason, f"{kept_checkpoint(out / CHECKPOINT)}; --resume writes the "
                                                   f"results again") from None
    barrier()
    return TrainResult(model.eval(), final_spec, metrics, out, completed=True)


def _json_line(record: dict) -> str:
    from ..utils.io import to_jsonable

    return json.dumps(to_jsonable(record), separators=(", ", ": ")) + "\n"
