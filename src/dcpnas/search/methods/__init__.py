"""Search methods, one module each. Each class registers itself under its ``--method`` names with
``@SearchMethod.register(...)`` (timm's ``@register_model``); ``build_method(ctx)`` picks one by
``cfg.method``."""

from __future__ import annotations

from .base import REGISTRY, MethodContext, SearchMethod
# Loading the method modules registers them; this order is the order of METHODS.
from . import dcpnas, cpnas_sample, bnas, darts, random_search  # noqa: E402,F401

__all__ = ["METHODS", "REGISTRY", "MethodContext", "SearchMethod", "build_method"]

#: every registered method name
METHODS: tuple[str, ...] = REGISTRY.names()


def build_method(ctx: MethodContext) -> SearchMethod:
    return REGISTRY[ctx.cfg.method](ctx)
