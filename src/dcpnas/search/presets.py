"""The search presets, registered by name for ``--preset`` (``dcpnas.config.register_preset``).

``quick`` is the CPU search the demo runs; ``fashion-mnist`` real data on a 2-core CPU; ``cifar10``
the DARTS proxy (GPU); ``imagenet`` the PC-DARTS-style proxy (multi-GPU).
"""

from __future__ import annotations

from ..config import register_preset
from .config import DataConfig, RandomConfig, SampleConfig, ScheduleConfig, SearchConfig, SupernetConfig

__all__ = ["quick", "fashion_mnist", "cifar10", "imagenet"]


@register_preset("search", "quick", replace=True)
def quick() -> SearchConfig:
    """CPU search that visibly searches, on the embedded Fashion-MNIST subset (2-3 minutes).

    1024 images at 14×14 (the found network trains at 28×28), 2 rounds of 16 + 16 steps (a full
    pass each); Adam on the weights because a few dozen SGD steps leave a supernet near chance,
    and a larger α step so that α moves within 64 α-steps instead of DARTS's thousands.
    """
    cfg = SearchConfig()
    cfg.data = DataConfig(dataset="embedded", batch_size=32, limit=1024, resolution=14,
                          eval_batches=8)
    cfg.supernet = SupernetConfig(C=4, layers=3)
    cfg.schedule = ScheduleConfig(rounds=2)
    for w in (cfg.optim.w, cfg.optim.w_hat):
        w.optimizer, w.lr, w.lr_min, w.weight_decay = "adam", 3e-3, 3e-4, 0.0
    cfg.optim.alpha.lr = 3e-2
    cfg.sample = SampleConfig(steps=4, eval_batches=2)
    cfg.random = RandomConfig(samples=4, eval_batches=4)
    cfg.device = "cpu"
    cfg.threads = 1                    # tiny kernels: one thread beats two on a shared 2-core box
    cfg.log_every = 4
    return cfg


@register_preset("search", "fashion-mnist", replace=True)
def fashion_mnist() -> SearchConfig:
    """Real Fashion-MNIST on a 2-core CPU within 45 minutes: 8192 images at 14×14, 4 rounds.

    About 17 minutes on one thread (docs/RESULTS.md#fashion-mnist-search). Sizes: a seeded
    8192-image subset of the 60 000 (4096 train the weights, 4096 the architecture),
    area-downsampled to 14×14 (the found network trains at 28×28), the `quick` supernet (C 4, 3
    cells), batch 64 (per-op overhead dominates these kernels on one thread: 4× the batch cost 2.8×
    the time), 4 rounds of 64 + 64 steps: 256 α-steps per supernet, 8× the `quick` search, with the
    α learning rate a third of quick's (1e-2) so α drifts by the same order over 4× the steps. One
    thread: it leaves the second core free.
    """
    cfg = quick()
    cfg.data = DataConfig(dataset="fashion-mnist", batch_size=64, limit=8192, resolution=14,
                          eval_batches=16)
    cfg.schedule = ScheduleConfig(rounds=4)
    cfg.optim.alpha.lr = 1e-2
    cfg.sample = SampleConfig(steps=16, eval_batches=4)
    cfg.random = RandomConfig(samples=8, eval_batches=8)
    cfg.log_every = 8
    return cfg


@register_preset("search", "cifar10", replace=True)
def cifar10() -> SearchConfig:
    """The DARTS proxy on CIFAR-10: 8 cells, 16 channels, 50 epochs per network, batch 64 (GPU)."""
    cfg = SearchConfig()
    cfg.data = DataConfig(dataset="cifar10", batch_size=64, augment=True)
    cfg.supernet = SupernetConfig(C=16, layers=8)
    cfg.schedule = ScheduleConfig(rounds=50)
    cfg.sample = SampleConfig(steps=100, eval_batches=20)
    cfg.random = RandomConfig(samples=10)
    cfg.log_every = 50
    return cfg


@register_preset("search", "imagenet", replace=True)
def imagenet() -> SearchConfig:
    """PC-DARTS-style ImageNet proxy: 10% of train/, ImageNet layout, 8 cells, C 16 (multi-GPU)."""
    cfg = SearchConfig()
    cfg.data = DataConfig(dataset="imagenet", batch_size=128, imagenet_fraction=0.1, augment=True,
                          data_dir="data/imagenet")
    cfg.supernet = SupernetConfig(C=16, layers=8, layout="imagenet")
    cfg.schedule = ScheduleConfig(rounds=25)
    cfg.sample = SampleConfig(steps=200, eval_batches=20)
    cfg.random = RandomConfig(samples=10)
    cfg.log_every = 50
    return cfg
