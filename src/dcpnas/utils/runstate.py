"""The state a run carries across a resume, shared by search and training: RNG states, and the check
that a resumed run computes what the saved run computed.

* :func:`rng_state` / :func:`set_rng_state`: Python, NumPy, torch CPU and CUDA generator states as
  tensors and plain values (so checkpoints load with ``weights_only=True``). One format for both loops;
  :func:`set_rng_state` also reads the NumPy entry of older training checkpoints (``gauss`` for
  ``cached``).
* :func:`check_resume_config`: every setting of the saved run, except the ones that only change how it
  runs (device, threads, logging, where data lives), must be the same now.
* :func:`check_finite_config`: a NaN or infinite number in a config (``optim.lr=nan``) is refused
  before anything runs; it could only end as a NaN loss, or as torch's traceback.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from ..config import flatten, to_dict
from ..errors import ConfigError, DataError

__all__ = ["rng_state", "set_rng_state", "check_resume_config", "check_finite_config", "restoring"]


def rng_state() -> dict:
    """Python, NumPy, torch CPU (and CUDA, once initialised) generator states."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only onto as many devices as were saved)."""
    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    cached = n["cached"] if "cached" in n else n["gauss"]
    np.random.set_state((n.get("name", "MT19937"), n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume_config(saved: dict, cfg: Any, *, runtime_keys: Iterable[str], where: str) -> None:
    """Raise :class:`ConfigError` naming the first setting (dotted key) that differs between the saved
    run (``saved``, a nested dict) and ``cfg``, ignoring ``runtime_keys``. A key only the saved run has
    is an error too (it would silently change meaning); a key only ``cfg`` has is a setting added since,
    at its default."""
    allowed = set(runtime_keys)
    now = flatten(to_dict(cfg))
    for key, before in sorted(flatten(saved).items()):
        if key in allowed:
            continue
        if key not in now:
            raise ConfigError(f"cannot resume {where}: the saved run has config key '{key}', which this "
                              f"dcpnas does not know")
        if now[key] != before:
            raise ConfigError(f"cannot resume {where}: config key '{key}' was {before!r} in the saved run, "
                              f"now {now[key]!r} (resume with the run's own settings, or start a new --out)")


def check_finite_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` naming the first setting that is NaN or infinite."""
    for key, value in flatten(to_dict(cfg)).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}' is {value}; it must be a finite number")


@contextlib.contextmanager
def restoring(path: Any) -> Iterator[None]:
    """Restoring a run from the checkpoint ``path``: a state that passed the format's type checks but
    does not fit (a crafted or damaged file: wrong shapes, a missing key, a bad RNG state) becomes one
    DataError naming the file, not a traceback from deep inside torch."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: the checkpoint does not fit this run ({type(exc).__name__}: {first})") from None
