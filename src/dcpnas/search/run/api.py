"""The Python entry point of a search: ``search(...) -> SearchResult``.

    from dcpnas.search import search
    result = search(preset="quick", method="dcpnas", overrides=["schedule.rounds=3"], out="runs/q")
    print(result.genotype.to_darts())

Under ``torchrun`` every process calls ``search`` with the same arguments; each trains on its shard
and rank 0 writes the outputs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable, Optional, Union

import torch

from ...config import apply_overrides, deep_merge, from_dict, resolve_config, to_dict
from ...errors import ConfigError
from ...utils.rundir import check_run_dir
from .. import presets  # noqa: F401  (registers the search presets)
from ..config import SearchConfig
from ..methods import check_method
from .loop import SearchLoop, SearchResult

__all__ = ["search", "resolve_search_config", "SearchResult"]

ConfigLike = Union[SearchConfig, dict, str, os.PathLike, None]


def resolve_search_config(config: ConfigLike = None, *, preset: Optional[str] = None,
                          method: Optional[str] = None, overrides: Iterable[str] = (),
                          out: Optional[Union[str, os.PathLike]] = None,
                          resume: bool = False) -> SearchConfig:
    """The run's config: preset, then a config (object, dict or .json/.toml file), then ``method``
    and the ``KEY=VALUE`` overrides. Resuming without preset or config reuses ``out/config.json``."""
    cfg = _resolve(config, preset=preset, method=method, overrides=overrides, out=out, resume=resume)
    check_method(cfg.method)
    return cfg


def _resolve(config: ConfigLike, *, preset, method, overrides, out, resume) -> SearchConfig:
    overrides = [overrides] if isinstance(overrides, str) else list(overrides)
    if method is not None:
        overrides.append(f"method={method}")
    if resume and config is None and preset is None and out is not None:
        # Another kind of run (a training, a study) is refused by kind before its config is read as ours.
        check_run_dir(out, "search", resume=True, probe_lock=False)
        saved = Path(out) / "config.json"
        if not saved.exists():
            raise ConfigError(f"nothing to resume in {out}: {saved} does not exist")
        config = saved
    if isinstance(config, SearchConfig):
        if preset is not None:
            raise ConfigError("pass either a SearchConfig or a preset, not both")
        return apply_overrides(config, overrides)  # also type-checks and validates a copy
    if isinstance(config, dict):
        base = to_dict(resolve_config(SearchConfig, "search", preset=preset))
        return apply_overrides(from_dict(SearchConfig, deep_merge(base, config)), overrides)
    return resolve_config(SearchConfig, "search", preset=preset, config_file=config, overrides=overrides)


def search(config: ConfigLike = None, *, preset: Optional[str] = None, method: Optional[str] = None,
           overrides: Iterable[str] = (), out: Optional[Union[str, os.PathLike]] = None,
           resume: bool = False, quiet: bool = False) -> SearchResult:
    """Run (or resume) an architecture search; returns the genotype, history, out dir and config.

    config: a SearchConfig, a dict of settings, or a .json/.toml file; preset: a registered search
    preset (quick, fashion-mnist, cifar10, imagenet); method: dcpnas | cpnas | cpnas-sample | bnas |
    darts | random; overrides: ``KEY=VALUE`` items (``objective.lam=1e-3``); out: run directory
    (default ``runs/search-<method>-<time>``); resume: continue the run in ``out``.
    """
    from ...utils.distributed import cleanup, init_distributed

    cfg = resolve_search_config(config, preset=preset, method=method, overrides=overrides, out=out,
                                resume=resume)
    if out is None:
        if resume:
            raise ConfigError("resume needs the run directory (out)")
        out = Path("runs") / f"search-{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    was_distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    threads = torch.get_num_threads()
    env = init_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return SearchLoop(cfg, out, env, quiet=quiet).run(resume=resume)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        if not was_distributed:
            cleanup()
