"""Search methods, one module each; ``build_method(name, ctx)`` picks one by ``cfg.method``."""

from __future__ import annotations

from .base import MethodContext, SearchMethod

__all__ = ["MethodContext", "SearchMethod", "build_method", "METHOD_MODULES"]

#: method name -> (module, class)
METHOD_MODULES = {
    "dcpnas": ("dcpnas", "DcpNas"),
    "cpnas": ("dcpnas", "DcpNas"),
    "cpnas-sample": ("cpnas_sample", "CpNasSample"),
    "bnas": ("bnas", "Bnas"),
    "darts": ("darts", "Darts"),
    "random": ("random_search", "RandomSearch"),
}


def build_method(ctx: MethodContext) -> SearchMethod:
    import importlib

    module, cls = METHOD_MODULES[ctx.cfg.method]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(ctx)
