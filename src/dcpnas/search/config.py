"""``SearchConfig``: every setting of a search run, typed and validated (the presets: presets.py).

Sections follow the method (docs/METHOD.md, the decisions): ``data`` (search split), ``supernet``
(proxy size), ``schedule`` (rounds, alternation), ``optim`` (w, ŵ, α optimisers), ``objective``
(λ, μ, G, D, curvature, tangent), ``decoupled`` (Decision O), ``ablation`` (Tables 4.2-4.4),
``sample`` (CP-NAS Algorithm 9) and ``random`` (random search). ``method`` picks the algorithm:

* ``dcpnas``       Algorithm 10: Parent epoch, α̂ ← α, Child epoch (−G + λD + μL_R), α ← α̂.
* ``cpnas``        the same loop with λ = 0 (book p.110: Eq. 4.32 then is CP-NAS's objective).
* ``cpnas-sample`` CP-NAS's own sample-and-prune search (Algorithm 9, Eqs. 4.15-4.16).
* ``bnas``         direct 1-bit DARTS: the Child alone with label cross-entropy (Eq. 4.25).
* ``darts``        real-valued first-order DARTS: the Parent alone.
* ``random``       random genotypes trained briefly as one-hot Child sub-networks; best by val accuracy.

A *round* is one Parent epoch + one Child epoch for dcpnas/cpnas, and one epoch of the single
supernet for darts/bnas, so every network gets ``schedule.rounds`` epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..binary.reconstruction import REDUCTIONS
from ..config.limits import check_network_size, check_resolution, check_seed
from ..errors import ConfigError
from ..space.macro import LAYOUTS
from ..space.primitives import PRIMITIVES, SCOPES
from .maths.curvature import CURVATURE_MODES
from .maths.decoupled import PARAMETRIZATIONS, RANK_SCOPES
from .maths.discrepancy import DISTANCES, SCALES
from .maths.objective import TEACHER_BN

__all__ = ["SearchConfig", "DataConfig", "SupernetConfig", "ScheduleConfig",
           "WeightOptimConfig", "ArchOptimConfig", "OptimConfig", "ObjectiveConfig",
           "DecoupledConfig", "AblationConfig", "SampleConfig", "RandomConfig"]

# Choices are Literal types built from the constants that define them (one source each);
# config/schema.py checks them with a one-line error naming the key and its close matches. The
# method names come from the methods' own registry (``dcpnas.search.methods.METHODS``).
Layout = Literal[("auto",) + LAYOUTS]  # auto: imagenet for ImageNet, else cifar
Scope = Literal[SCOPES]
Distance = Literal[DISTANCES]
DiscrepancyScale = Literal[SCALES]
CurvatureMode = Literal[CURVATURE_MODES]
TeacherBN = Literal[TEACHER_BN]
RankScope = Literal[RANK_SCOPES]
Parametrization = Literal[PARAMETRIZATIONS]
Reduction = Literal[REDUCTIONS]


def _positive(name: str, value, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class DataConfig:
    """Which images, and how the training set is cut into search-train / search-val."""

    dataset: str = "embedded"          # embedded | fashion-mnist | cifar10 | cifar100 | npz:<path> | imagenet
    data_dir: Optional[str] = None     # where downloads go / ImageNet's root (train/<class>/*)
    download: bool = True
    batch_size: int = 64               # per process
    split_fraction: float = 0.5        # share of the training set that trains weights (rest: α)
    limit: int = 0                     # use a seeded subset of this many training images (0: all)
    augment: bool = False              # random crop + flip on search-train and search-val
    imagenet_fraction: float = 0.1     # ImageNet: share of train/ used by the search
    image_size: int = 224              # ImageNet only
    resolution: int = 0                # in-memory data: search on images area-downsampled to this
                                       # side (0: as stored); the found network trains at full size
    workers: int = 8                   # ImageNet DataLoader workers
    eval_batches: int = 0              # batches of search-val for the final accuracies (0: all)

    def validate(self) -> None:
        _positive("batch_size", self.batch_size)
        if not 0.0 < self.split_fraction < 1.0:
            raise ConfigError(f"split_fraction must be in (0, 1), got {self.split_fraction}")
        _positive("limit", self.limit, allow_zero=True)
        if self.limit == 1:
            raise ConfigError("limit must be 0 (all images) or at least 2")
        if not 0.0 < self.imagenet_fraction <= 1.0:
            raise ConfigError(f"imagenet_fraction must be in (0, 1], got {self.imagenet_fraction}")
        _positive("image_size", self.image_size)
        _positive("resolution", self.resolution, allow_zero=True)
        check_resolution(self.resolution)
        _positive("workers", self.workers, allow_zero=True)
        _positive("eval_batches", self.eval_batches, allow_zero=True)


@dataclass
class SupernetConfig:
    """The search proxy: Supernet(C, layers, layout, scope) for both the Parent and the Child."""

    C: int = 16
    layers: int = 8
    layout: Layout = "auto"
    scope: Scope = "official"          # binarisation scope of the Child (docs/METHOD.md#decision-scope)
    alpha_init_std: float = 1e-3
    # Adds this × N(0, 1) (its own seeded generator) to the initial α: the null perturbation that
    # measures the noise floor of a comparison (docs/METHOD.md, Decision N). 0: off.
    alpha_perturbation: float = 0.0
    alpha_perturbation_seed: int = 0   # which N(0, 1) draw: replicas of `search --replica-mode perturb`
    # PC-DARTS's partial channel connection: 1/K of each edge's channels through the mixed op,
    # the rest bypass it, then a channel shuffle (Parent and Child alike). 1: off.
    partial_channels: int = 1
    # PC-DARTS's edge normalisation: each node weights its incoming edges by a softmax of learned
    # β (architecture parameters beside α; the genotype ranks edges by softmax(α)·that weight).
    edge_normalization: bool = False

    def validate(self) -> None:
        if self.C < 2 or self.C % 2:
            raise ConfigError(f"C must be an even number >= 2, got {self.C}")
        if self.layers < 3:
            raise ConfigError(f"layers must be >= 3 (two reduction cells and a normal one), got {self.layers}")
        _positive("alpha_init_std", self.alpha_init_std, allow_zero=True)
        _positive("alpha_perturbation", self.alpha_perturbation, allow_zero=True)
        if self.alpha_perturbation_seed < 0:
            raise ConfigError(f"alpha_perturbation_seed must be >= 0, got {self.alpha_perturbation_seed}")
        if self.partial_channels < 1 or self.C % self.partial_channels:
            raise ConfigError(f"partial_channels must be >= 1 and divide C={self.C}, got "
                              f"{self.partial_channels}")


@dataclass
class ScheduleConfig:
    rounds: int = 50                   # epochs per network (see the module docstring)
    alternation: Literal["epoch", "step"] = "epoch"  # epoch: Algorithm 10 | step: P and C per batch
    steps_per_epoch: int = 0           # cap on the batches of one epoch (0: a full pass)

    def validate(self) -> None:
        _positive("rounds", self.rounds)
        _positive("steps_per_epoch", self.steps_per_epoch, allow_zero=True)


@dataclass
class WeightOptimConfig:
    """Optimiser of supernet weights: SGD (DARTS default) or Adam; cosine decay to ``lr_min``."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.025
    lr_min: float = 1e-3
    momentum: float = 0.9              # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adam
    weight_decay: float = 3e-4

    def validate(self) -> None:
        _positive("lr", self.lr)
        _positive("lr_min", self.lr_min, allow_zero=True)
        if self.lr_min > self.lr:
            raise ConfigError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        _positive("momentum", self.momentum, allow_zero=True)
        _positive("weight_decay", self.weight_decay, allow_zero=True)


@dataclass
class ArchOptimConfig:
    """Adam on α and α̂ (the DARTS architect's settings)."""

    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-3

    def validate(self) -> None:
        _positive("lr", self.lr)
        _positive("weight_decay", self.weight_decay, allow_zero=True)


@dataclass
class OptimConfig:
    w: WeightOptimConfig = field(default_factory=WeightOptimConfig)        # Parent weights w
    w_hat: WeightOptimConfig = field(default_factory=WeightOptimConfig)    # Child weights ŵ and β
    alpha: ArchOptimConfig = field(default_factory=ArchOptimConfig)        # α and α̂
    grad_clip: float = 5.0                                                 # weight-gradient norm (0: off)

    def validate(self) -> None:
        _positive("grad_clip", self.grad_clip, allow_zero=True)


#: The GGN's curvature sub-batch when ``objective.curvature_fraction`` is None (Decision C): a
#: cheaper round, an α̂-step close to the whole batch's, and a search outcome within the noise floor
#: (docs/RESULTS.md#curvature-subbatch).
DEFAULT_CURVATURE_FRACTION = 0.25


@dataclass
class ObjectiveConfig:
    """L = −G + λD + μL_R (Eq. 4.32) and how its α̂-gradient is computed (docs/METHOD.md)."""

    # λ acts on D divided by the tangent's scale (discrepancy_scale=tangent), so one λ means about
    # the same at every supernet size (measured ρ/λ = 6.8, 4.4, 3.4 at the quick, fashion-mnist and
    # cifar10 sizes, benchmarks/calibrate_lambda.py); λ = 0.03 puts ρ = ‖λ·H_G·∂D/∂g_C‖/‖g_C‖ at
    # 0.10–0.21 early in the Child epochs of every preset (target 0.05–0.5, docs/METHOD.md
    # Decision L). The book's λ = 5e-3 on the raw D: discrepancy_scale=none lam=5e-3 (ρ ≈ 1e-4 at
    # our sizes: D then has no effect).
    lam: float = 0.03
    mu: float = 0.2
    distance: Distance = "fro"         # Table 4.4, Eq. 4.31
    discrepancy_scale: DiscrepancyScale = "tangent"  # D / ‖g_P‖² (fro), / ‖g_P‖₁ (l1) | none: raw D
    # ggn: Jᵀ(diag p̂ − p̂p̂ᵀ)J, for a softmax the true Fisher of Eq. 4.36 | exact: Hessian-vector
    # product ("w/o GGN", Table 4.3) | fisher: the empirical outer product of batch gradients
    # (rank-1 with K = 1 is parallel to g_C, so it can only rescale the step, never turn it).
    curvature: CurvatureMode = "ggn"
    # How the GGN forms J v (same numbers): forward (forward-mode AD, one more Child forward) |
    # reverse (a double VJP on the graph of the g_C backward: no second forward, but that graph is
    # kept, twice the peak memory at C 8, 5 cells; benchmarks/README.md). Only forward takes the
    # curvature sub-batch below.
    ggn_jvp: Literal["forward", "reverse"] = "forward"
    # The GGN product on the first ⌈f·B⌉ images of the α̂-batch (at least 2; g_C still uses all
    # B): Hessian-free optimisation's curvature mini-batch (Martens 2010), an estimate of the
    # batch's product at about f of its cost, with its own forward (BN statistics of the sub-batch).
    # 1: the whole batch. None (default): 1/4 where it applies (ggn with forward-mode J·v), the
    # whole batch otherwise; ``fraction`` is the value in effect (docs/METHOD.md, Decision C).
    curvature_fraction: Optional[float] = None
    fisher_microbatches: int = 1
    fisher_sign: Literal[-1.0, 1.0] = -1.0
    temperature: float = 1.0
    label_ce_weight: float = 0.0
    tangent: Literal["recompute", "epoch_mean"] = "recompute"  # on the α̂ batch | last Parent epoch's mean
    log_discrepancy: bool = False      # λ = 0 (cpnas): still compute g_P to log D (one Parent backward)
    # How the Parent normalises when it teaches (G's target, g_P): batch statistics with running
    # statistics untouched (batch), or its running statistics (running: eval mode; after a few
    # hundred updates these lag the weights and the teacher scores at chance).
    teacher_bn: TeacherBN = "batch"
    reconstruction_reduction: Reduction = "sum"
    # ‖μ∇L_R‖ is capped at this multiple of ‖∇G‖ in the Child's weight step, so G's share of the
    # weight-gradient norm² stays ≥ 1/(1 + cap²) (80 % at 0.5; Decision R). 0: no cap (the book's
    # plain sum, where L_R took 63–98 % of the update).
    reconstruction_cap: float = 0.5

    @property
    def fraction(self) -> float:
        """The curvature sub-batch fraction in effect (``curvature_fraction``, None resolved)."""
        if self.curvature_fraction is not None:
            return self.curvature_fraction
        subbatch = self.curvature == "ggn" and self.ggn_jvp == "forward"
        return DEFAULT_CURVATURE_FRACTION if subbatch else 1.0

    def validate(self) -> None:
        _positive("lam", self.lam, allow_zero=True)
        _positive("mu", self.mu, allow_zero=True)
        _positive("fisher_microbatches", self.fisher_microbatches)
        f = self.curvature_fraction
        if f is not None and not 0.0 < f <= 1.0:
            raise ConfigError(f"curvature_fraction must be in (0, 1], got {f}")
        if f is not None and f < 1.0 and self.curvature != "ggn":
            raise ConfigError(f"curvature_fraction < 1 is a ggn option (curvature is {self.curvature!r})")
        if f is not None and f < 1.0 and self.ggn_jvp != "forward":
            raise ConfigError("curvature_fraction < 1 forms J·v by forward mode in its own forward: "
                              "set ggn_jvp=forward")
        _positive("temperature", self.temperature)
        _positive("label_ce_weight", self.label_ce_weight, allow_zero=True)
        _positive("reconstruction_cap", self.reconstruction_cap, allow_zero=True)


@dataclass
class DecoupledConfig:
    """Decoupled optimisation (Eqs. 4.50–4.53): backtrack α of low-norm ops by c⊙α_prev.

    parametrization=phi (default): the learned coefficient is φ = η·ψ̃ itself, one entry per
    edge, initialised to psi_init and stepped with psi_lr. book: ψ̃ times η = η₁η₂ (architecture
    lr × weight lr) as printed; with Adam on α that backtrack is ~1e-6 of the α step (inert).
    """

    enabled: bool = True
    parametrization: Parametrization = "phi"  # phi: learn φ = η·ψ̃ | book: ψ̃ with η = η₁η₂
    psi_init: float = 1e-2             # φ₀ (phi) or ψ̃₀ (book)
    psi_lr: float = 0.0                # step size of φ (or ψ̃); 0 means "the α learning rate"
    tau: Optional[int] = None          # ops ranked beyond τ (by R(w), largest first) are backtracked;
                                       # None: half the ranked (parametric) ops
    rank_scope: RankScope = "column"   # column: one ranking per op type (book) | edge: within each edge
    include_parameter_free: bool = False

    def validate(self) -> None:
        _positive("psi_init", self.psi_init, allow_zero=True)
        _positive("psi_lr", self.psi_lr, allow_zero=True)
        if self.tau is not None and not 0 <= self.tau <= len(PRIMITIVES):
            raise ConfigError(f"tau must be in 0..{len(PRIMITIVES)} (the number of ops), got {self.tau}")


@dataclass
class AblationConfig:
    """Switches of Table 4.2 (D and L_R); decoupled.enabled, objective.curvature and
    objective.distance are the other ablations (Tables 4.3, 4.4)."""

    use_discrepancy: bool = True       # False: λ = 0 (the tangent propagation is off)
    use_reconstruction: bool = True    # False: μ = 0


@dataclass
class SampleConfig:
    """CP-NAS Algorithm 9 (docs/METHOD.md#eq-4-16): K = 8 ops per edge, pruned to 1."""

    sweeps: int = 1                    # T: sweeps of K samplings per pruning stage
    beta_p: float = 0.5                # β_P of Eq. 4.15
    steps: int = 0                     # training batches per sampled architecture (0: one epoch)
    eval_batches: int = 0              # search-val batches scoring one architecture (0: all)

    def validate(self) -> None:
        _positive("sweeps", self.sweeps)
        _positive("steps", self.steps, allow_zero=True)
        _positive("eval_batches", self.eval_batches, allow_zero=True)


@dataclass
class RandomConfig:
    """Random search: ``samples`` random genotypes, each trained ``epochs`` epochs as a Child."""

    samples: int = 8
    epochs: int = 0                    # epochs per sample (0: 2·rounds/samples, the dcpnas budget)
    supervision: Literal["parent", "label"] = "parent"  # −G + μL_R from a Parent on the same path | CE
    eval_batches: int = 0

    def validate(self) -> None:
        _positive("samples", self.samples)
        _positive("epochs", self.epochs, allow_zero=True)
        _positive("eval_batches", self.eval_batches, allow_zero=True)


@dataclass
class SearchConfig:
    method: str = "dcpnas"
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    decoupled: DecoupledConfig = field(default_factory=DecoupledConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    random: RandomConfig = field(default_factory=RandomConfig)
    init_child_from_parent: bool = False   # ŵ ← w once before round 1 (docs/METHOD.md#decision-weights)
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threads: int = 0                   # CPU threads for torch (0: torch's default)
    amp: bool = True                   # bf16 autocast, CUDA only
    channels_last: bool = True         # NHWC on CUDA and CPU (faster on both)
    log_every: int = 10                # steps between log.jsonl step records
    tensorboard: bool = True           # when torch.utils.tensorboard imports
    keep_checkpoints: bool = False     # also keep ckpt/epoch_NNN.pt besides ckpt/last.pt
    stop_after_epochs: int = 0         # stop (resumable) after this many epochs in this process

    def validate(self) -> None:
        # The method name is checked against the registry where the methods load
        # (``methods.check_method``): the methods build on this module, not the other way round.
        _positive("log_every", self.log_every)
        _positive("threads", self.threads, allow_zero=True)
        _positive("stop_after_epochs", self.stop_after_epochs, allow_zero=True)
        check_seed(self.seed)
        check_network_size("supernet", self.supernet.C, self.supernet.layers)
        if self.objective.fisher_microbatches > self.data.batch_size:
            raise ConfigError(f"objective.fisher_microbatches ({self.objective.fisher_microbatches}) splits one batch; "
                              f"it must not exceed data.batch_size ({self.data.batch_size})")
        if self.data.dataset == "imagenet" and not self.data.data_dir:
            raise ConfigError("data.dataset=imagenet needs data.data_dir (the ImageNet root)")
        if self.supernet.edge_normalization and self.method in SINGLE_PATH_METHODS:
            raise ConfigError(f"supernet.edge_normalization weights mixed edges; method {self.method!r} "
                              f"trains single paths and has none to weight")

    # -- derived settings ---------------------------------------------------------------------
    @property
    def layout(self) -> str:
        if self.supernet.layout != "auto":
            return self.supernet.layout
        return "imagenet" if self.data.dataset == "imagenet" else "cifar"

    @property
    def lam(self) -> float:
        """λ in effect: 0 for cpnas and when the discrepancy is ablated."""
        if self.method == "cpnas" or not self.ablation.use_discrepancy:
            return 0.0
        return self.objective.lam

    @property
    def mu(self) -> float:
        """μ in effect: 0 when the reconstruction term is ablated."""
        return self.objective.mu if self.ablation.use_reconstruction else 0.0


#: Methods that train sampled single-path networks instead of the mixed supernet.
SINGLE_PATH_METHODS = ("cpnas-sample", "random")
