"""Search methods, one module each. Each class registers itself under its ``--method`` names with
``@SearchMethod.register(...)`` (timm's ``@register_model``); ``build_method(ctx)`` picks one by
``cfg.method``."""

from __future__ import annotations

import difflib

from ...errors import ConfigError
from .base import REGISTRY, MethodContext, SearchMethod
# Loading the method modules registers them; this order is the order of METHODS.
from . import dcpnas, cpnas_sample, bnas, darts, random_search  # noqa: E402,F401

__all__ = ["METHODS", "REGISTRY", "MethodContext", "SearchMethod", "build_method", "check_method"]

#: every registered method name
METHODS: tuple[str, ...] = REGISTRY.names()


def check_method(name: str) -> None:
    """A ConfigError naming the config key and the close matches unless ``name`` is registered."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=2, cutoff=0.6)
        hint = " (did you mean " + " or ".join(repr(c) for c in close) + "?)" if close else ""
        raise ConfigError(f"config key 'method': expected one of {', '.join(map(repr, METHODS))}, "
                          f"got {name!r}{hint}")


def build_method(ctx: MethodContext) -> SearchMethod:
    check_method(ctx.cfg.method)
    return REGISTRY[ctx.cfg.method](ctx)
