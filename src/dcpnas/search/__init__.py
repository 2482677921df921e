"""The DCP-NAS search. ``maths/``: the method (objective terms, the distance D, curvature products,
the Child's α̂-gradient, decoupled optimisation, the architects); ``run/``: the run machinery (steps,
driver, loop, checkpoints, reporting, inputs, the ``search`` entry point); ``methods/``: the search
algorithms, each built from the two; ``config.py`` and ``presets.py``: the settings."""

from .maths.child_gradient import ArchGradient, child_arch_gradient
from .maths.curvature import (CURVATURE_MODES, GGN, ChildGraph, Curvature, Exact, Fisher,
                        consistent_derivatives, curvature_product, exact_hvp, make_curvature,
                        fisher_product, frozen_bn_statistics, ggn_product,
                        jacobian_vector_product, logit_hessian_product, microbatch_gradients)
from .maths.decoupled import RANK_SCOPES, DecoupledOptimization
from .maths.objective import (DISTANCES, child_objective_per_sample, child_parent_G,
                        child_parent_G_per_sample, child_weight_objective, discrepancy,
                        discrepancy_direction, parent_forward, teaching)
from .maths.discrepancy import Distance, make_distance

__all__ = [
    # objective
    "DISTANCES", "child_objective_per_sample", "child_parent_G", "child_parent_G_per_sample",
    "child_weight_objective", "discrepancy", "discrepancy_direction", "parent_forward",
    "teaching", "Distance", "make_distance",
    # curvature
    "CURVATURE_MODES", "Curvature", "Exact", "GGN", "Fisher", "ChildGraph", "make_curvature",
    "consistent_derivatives", "curvature_product", "exact_hvp",
    "fisher_product", "frozen_bn_statistics",
    "ggn_product", "jacobian_vector_product", "logit_hessian_product", "microbatch_gradients",
    # the Child's architecture gradient
    "ArchGradient", "child_arch_gradient",
    # decoupled optimisation
    "RANK_SCOPES", "DecoupledOptimization",
]

# The search loop, the baselines and the Python entry point load on first use: importing one math
# module (dcpnas.search.maths.objective, ...) runs this file, and must not pull in the whole loop.
_LAZY = {"METHODS": ".methods", "SearchConfig": ".config", "SearchResult": ".run.api",
         "resolve_search_config": ".run.api", "search": ".run.api"}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
