"""Named config presets per kind ("search", "train", ...) and the preset -> file -> overrides resolution."""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any, Callable, Iterable, TypeVar

from ..errors import ConfigError
from .files import load_config_file
from .schema import apply_overrides, deep_merge, from_dict, to_dict

__all__ = ["register_preset", "get_preset", "list_presets", "resolve_config"]

T = TypeVar("T")

_PRESETS: dict[str, dict[str, Callable[[], Any]]] = {}


def register_preset(kind: str, name: str, factory: Callable[[], Any] | None = None, *, replace: bool = False):
    """Register ``factory`` (no-argument callable returning a config dataclass) as preset ``kind/name``.

    Usable as a decorator when ``factory`` is omitted. Registering a taken name raises ``ValueError``
    (a programming error) unless ``replace=True``.
    """
    if factory is None:
        return lambda f: register_preset(kind, name, f, replace=replace)
    if not callable(factory):
        raise TypeError(f"preset factory for {kind}/{name} must be callable, got {factory!r}")
    table = _PRESETS.setdefault(kind, {})
    if name in table and not replace and table[name] is not factory:
        raise ValueError(f"{kind} preset {name!r} is already registered")
    table[name] = factory
    return factory


def list_presets(kind: str) -> list[str]:
    """Sorted names of the presets registered for ``kind`` (empty when none)."""
    return sorted(_PRESETS.get(kind, {}))


def get_preset(kind: str, name: str) -> Any:
    """A fresh config built by preset ``kind/name``; an unknown name raises :class:`ConfigError` listing them."""
    table = _PRESETS.get(kind, {})
    if name not in table:
        names = sorted(table)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = ("did you mean " + ", ".join(repr(c) for c in close) + "? ") if close else ""
        available = ", ".join(names) if names else "none registered"
        raise ConfigError(f"unknown {kind} preset {name!r} ({hint}available: {available})")
    cfg = table[name]()
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"{kind} preset {name!r} returned {type(cfg).__name__}, not a config dataclass")
    return cfg


def resolve_config(
    cls: type[T],
    kind: str,
    preset: str | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
) -> T:
    """The config of a run: preset (or ``cls()``), then a file's (partial) dict merged deep, then overrides.

    The result is type-checked and validated; every problem raises a one-line :class:`ConfigError`.
    """
    cfg = get_preset(kind, preset) if preset is not None else cls()
    if not isinstance(cfg, cls):
        raise TypeError(f"{kind} preset {preset!r} built {type(cfg).__name__}, expected {cls.__name__}")
    data = to_dict(cfg)
    if config_file is not None:
        data = deep_merge(data, load_config_file(config_file))
        try:
            cfg = from_dict(cls, data)
        except ConfigError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None  # say which file holds the bad key
    else:
        cfg = from_dict(cls, data)
    return apply_overrides(cfg, overrides)
