"""Layering: what a module imports, checked in a fresh interpreter (docs/ARCHITECTURE.md).

The losses shared by search and training live below both (dcpnas.losses), so the training loss
does not load the search; importing a search submodule does not load the search loop.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_modules(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(m for m in sys.modules if m.startswith('dcpnas')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_training_loss_does_not_load_the_search():
    assert not {m for m in loaded_modules("import dcpnas.train.losses") if m.startswith("dcpnas.search")}


@pytest.mark.parametrize("module", ["dcpnas.search.maths.objective", "dcpnas.search.maths.curvature"])
def test_a_search_submodule_does_not_load_the_loop(module):
    mods = loaded_modules(f"import {module}")
    assert module in mods
    assert not mods & {"dcpnas.search.run.loop", "dcpnas.search.run.api", "dcpnas.search.methods"}


def test_the_search_package_still_exports_its_api():
    import dcpnas.search as search

    for name in ("search", "SearchConfig", "SearchResult", "child_arch_gradient", "child_parent_G"):
        assert name in search.__all__ and getattr(search, name) is not None


def test_shared_G_is_one_function():
    import dcpnas.losses
    import dcpnas.search.maths.objective

    assert dcpnas.search.maths.objective.child_parent_G is dcpnas.losses.child_parent_G


def test_kernels_sit_below_binary_and_space():
    """dcpnas.kernels (faster CPU paths of torch ops) loads nothing else of the package."""
    assert {m for m in loaded_modules("import dcpnas.kernels")} <= {
        "dcpnas", "dcpnas.kernels", "dcpnas.kernels.batchnorm", "dcpnas.kernels.depthwise",
        "dcpnas.kernels.pointwise", "dcpnas.kernels.policy"}
