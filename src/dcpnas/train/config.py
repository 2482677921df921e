"""``TrainConfig``: every setting of a final-training run, typed and validated.

Sections: ``model`` (genotype, size, 1-bit or real), ``data``, ``optim`` (AdamW/SGD + cosine),
``loss`` (distillation −G, label CE, L_R), ``teacher`` (none | checkpoint | self | torchvision).
The top level holds the schedule (two-step recipe, epochs) and the runtime (seed, device, amp).

``data.batch_size`` is the **global** batch (split over torchrun processes) and ``optim.lr`` is the
learning rate at ``optim.lr_batch``: the rate in effect is ``lr · batch_size / lr_batch`` (the
authors' rule, docs/METHOD.md#decision-training: 1e-3 at 512).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..config.limits import check_network_size, check_seed
from ..errors import ConfigError
from ..space.macro import LAYOUTS
from ..space.network import SIZES
from ..space.primitives import SCOPES

__all__ = ["ModelConfig", "DataConfig", "OptimConfig", "LossConfig", "TeacherConfig", "TrainConfig",
           "TEACHER_KINDS"]

TEACHER_KINDS = ("none", "checkpoint", "self", "torchvision")

# Choices are Literal types built from the constants that define them (config/schema.py checks
# them, with close matches in the message).
Size = Literal[tuple(SIZES)]
Scope = Literal[SCOPES]
Layout = Literal[("auto",) + LAYOUTS]   # auto: imagenet for ImageNet, else cifar
TeacherKind = Literal[TEACHER_KINDS]


def _nonneg(name: str, value, *, positive: bool = False) -> None:
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")


@dataclass
class ModelConfig:
    """The network derived from a genotype (``dcpnas.space.network.build_network``)."""

    genotype: Optional[str] = None     # name, file or 'Genotype(...)' string (the CLI's --genotype)
    size: Size = "XS"                  # C and layers below override it
    C: Optional[int] = None
    layers: Optional[int] = None
    binary: bool = True                # 1-bit weights and activations; false: real-valued network
    scope: Scope = "official"          # binarisation scope of the 1-bit ops
    layout: Layout = "auto"
    drop_path: float = 0.0             # final drop-path probability (ramped linearly over a step)
    stem_multiplier: int = 3           # stem width = stem_multiplier·C (DARTS: 3)
    init_from: Optional[str] = None    # start from a model file's weights (e.g. a run's step1.pt)

    def validate(self) -> None:
        if self.C is not None and (self.C < 2 or self.C % 2):
            raise ConfigError(f"C must be an even number >= 2, got {self.C}")
        if self.layers is not None and self.layers < 1:
            raise ConfigError(f"layers must be >= 1, got {self.layers}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if not 1 <= self.stem_multiplier <= 16:
            raise ConfigError(f"stem_multiplier must be an integer in 1..16, got {self.stem_multiplier}")


@dataclass
class DataConfig:
    dataset: str = "embedded"          # embedded | fashion-mnist | cifar10 | cifar100 | npz:<path> | imagenet
    data_dir: Optional[str] = None     # download folder, or the ImageNet root (train/, val/)
    download: bool = True
    batch_size: int = 64               # global batch, split over the torchrun processes
    eval_batch_size: int = 0           # per process; 0: 2 × the per-process training batch
    train_limit: int = 0               # a seeded subset of this many training images (0: all)
    test_limit: int = 0                # the first N test images (0: all)
    augment: bool = True               # random crop (zero padding) + horizontal flip; ImageNet: RRC + flip
    crop_padding: int = 4
    hflip: bool = True
    cutout: int = 0                    # side of the Cutout square in pixels (0: off)
    image_size: int = 224              # ImageNet only
    workers: int = 8                   # ImageNet DataLoader workers

    def validate(self) -> None:
        _nonneg("batch_size", self.batch_size, positive=True)
        for name in ("eval_batch_size", "train_limit", "test_limit", "crop_padding", "cutout", "workers"):
            _nonneg(name, getattr(self, name))
        _nonneg("image_size", self.image_size, positive=True)


@dataclass
class OptimConfig:
    """AdamW (the authors' timm default) or SGD; per-step cosine from the scaled lr to ``min_lr``."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3                   # at a global batch of lr_batch, scaled linearly
    lr_batch: int = 512
    min_lr: float = 1e-5               # the floor of the cosine (timm's default, as the authors)
    warmup_epochs: float = 0.0         # linear warm-up at the start of each step
    weight_decay: float = 1e-5         # step 1 (or the only step); not applied to 1-D params (BN, β, PReLU, bias)
    weight_decay_step2: float = 0.0    # step 2 (binary weights), 0 as the authors
    lr_scale_step2: float = 1.0        # step 2's peak lr as a multiple of step 1's (the authors: 1)
    momentum: float = 0.9              # sgd
    nesterov: bool = False             # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adamw
    eps: float = 1e-8                  # adamw
    grad_clip: float = 0.0             # max global gradient norm (0: off)

    def validate(self) -> None:
        _nonneg("lr", self.lr, positive=True)
        _nonneg("lr_batch", self.lr_batch, positive=True)
        _nonneg("lr_scale_step2", self.lr_scale_step2, positive=True)
        for name in ("min_lr", "warmup_epochs", "weight_decay", "weight_decay_step2", "momentum",
                     "eps", "grad_clip"):
            _nonneg(name, getattr(self, name))


@dataclass
class LossConfig:
    """loss = distill_weight·(−G) + label_weight·CE + reconstruction_weight·L_R.

    −G = KL(p_teacher ‖ p_student) at ``temperature`` (``dcpnas.search.maths.objective.child_parent_G``,
    the soft-target CE up to the teacher's entropy). Without a teacher the loss is the label CE alone
    (weight 1). L_R (Eq. 4.23) is added only while binary weights are on (step 2).
    """

    distill_weight: float = 1.0
    temperature: float = 1.0
    label_weight: float = 0.0          # label CE next to the distillation term (the authors: 0)
    label_smoothing: float = 0.0
    reconstruction_weight: float = 0.0

    def validate(self) -> None:
        for name in ("distill_weight", "label_weight", "reconstruction_weight"):
            _nonneg(name, getattr(self, name))
        _nonneg("temperature", self.temperature, positive=True)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class TeacherConfig:
    """The real-valued teacher of the distillation loss.

    * ``none``: label CE only.
    * ``checkpoint``: a model saved by ``dcpnas train`` (``model.pt`` of a real-valued run).
    * ``self``: train the same genotype real-valued (at ``size``/``C``/``layers`` when given) for
      ``epochs`` epochs, cached in ``<out>/teacher/`` and reused on resume and second runs.
    * ``torchvision``: an ImageNet-pretrained torchvision model (``arch``, default ResNet-34); the
      weights come from the torch hub cache or are downloaded with a ``download_timeout``.
    """

    kind: TeacherKind = "none"
    checkpoint: Optional[str] = None
    arch: str = "resnet34"
    size: Optional[Size] = None        # self: None = the student's size
    C: Optional[int] = None
    layers: Optional[int] = None
    epochs: int = 10                   # self
    lr: Optional[float] = None         # self: None = the student's optim.lr
    weight_decay: float = 5e-4         # self (real-valued nets want more than the 1-bit 1e-5)
    download_timeout: float = 60.0     # torchvision, seconds per socket operation

    def validate(self) -> None:
        if self.kind == "checkpoint" and not self.checkpoint:
            raise ConfigError("kind=checkpoint needs teacher.checkpoint (a model.pt of a real-valued run)")
        _nonneg("epochs", self.epochs, positive=True)
        _nonneg("weight_decay", self.weight_decay)
        _nonneg("download_timeout", self.download_timeout, positive=True)
        if self.lr is not None:
            _nonneg("lr", self.lr, positive=True)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    two_step: bool = True              # 1-bit nets: step 1 real weights + binary activations, step 2 binary
    epochs: int = 10                   # per step
    step1_epochs: Optional[int] = None  # None: the same as epochs
    reset_beta: bool = True            # β ← mean|ŵ| at the start of step 2 (see trainer.py)
    bn_recalibration: int = 20         # binary-weight steps: re-estimate BN statistics on this many
                                       # training batches before each test evaluation (0: off)
    seed: int = 0
    device: str = "auto"
    threads: int = 0                   # CPU threads for torch (0: torch's default)
    amp: bool = True                   # bf16 autocast, CUDA only
    channels_last: bool = True         # NHWC on CUDA and CPU (faster on both)
    deterministic: bool = False
    eval_every: int = 1                # epochs between test evaluations (the last epoch of a step always)
    check_every: int = 50              # steps between non-finite-loss checks (and progress updates)
    stop_after_epochs: int = 0         # stop (resumable with --resume) after this many epochs in this process

    def validate(self) -> None:
        _nonneg("epochs", self.epochs, positive=True)
        if self.step1_epochs is not None:
            _nonneg("step1_epochs", self.step1_epochs, positive=True)
        _nonneg("bn_recalibration", self.bn_recalibration)
        for name in ("eval_every", "check_every"):
            _nonneg(name, getattr(self, name), positive=True)
        _nonneg("stop_after_epochs", self.stop_after_epochs)
        _nonneg("threads", self.threads)
        check_seed(self.seed)
        check_network_size("model", self.model.C, self.model.layers)
        check_network_size("teacher", self.teacher.C, self.teacher.layers)
        if self.data.dataset == "imagenet" and not self.data.data_dir:
            raise ConfigError("data.dataset=imagenet needs data.data_dir (the ImageNet root)")
        if self.teacher.kind == "torchvision" and self.data.dataset != "imagenet":
            raise ConfigError(f"teacher.kind=torchvision is an ImageNet model; data.dataset is "
                              f"{self.data.dataset!r} (use teacher.kind=self or checkpoint)")
        if self.teacher.kind == "self" and self.data.dataset == "imagenet":
            raise ConfigError("teacher.kind=self trains on small in-memory datasets only; "
                              "use teacher.kind=torchvision or checkpoint for ImageNet")

    # -- derived settings ---------------------------------------------------------------------
    @property
    def layout(self) -> str:
        if self.model.layout != "auto":
            return self.model.layout
        return "imagenet" if self.data.dataset == "imagenet" else "cifar"

    @property
    def scaled_lr(self) -> float:
        """The learning rate in effect: ``lr · batch_size / lr_batch``."""
        return self.optim.lr * self.data.batch_size / self.optim.lr_batch
