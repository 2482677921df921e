"""One module per cross-cutting concern: search and training share the run state, the non-finite
guard, the BN-sync policy, atomic files and the model-file readers, and evaluate and export do not
import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch


SRC = Path(__file__).resolve().parents[1] / "src" / "dcpnas"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions (relative names as written)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("module, other", [("evaluate", "export"), ("export", "evaluate")])
def test_evaluate_and_export_share_modelfile_not_each_other(module, other):
    names = imported(SRC / "train" / f"{module}.py")
    assert ".modelfile" in names and f".{other}" not in names and f"dcpnas.train.{other}" not in names


def test_search_and_train_use_the_same_run_state_and_guards():
    from dcpnas.search.run import checkpoint as search_ckpt, loop
    from dcpnas.train import checkpoint as train_ckpt, trainer
    from dcpnas.utils import distributed, finite, runstate

    assert search_ckpt.rng_state is train_ckpt.rng_state is runstate.rng_state
    assert search_ckpt.set_rng_state is trainer.set_rng_state is runstate.set_rng_state
    assert loop.sync_batchnorm_stats is trainer.sync_batchnorm_stats is distributed.sync_batchnorm_stats
    assert loop.check_finite_state is trainer.check_finite_state is finite.check_finite_state


def test_old_train_rng_states_still_restore():
    """Training checkpoints written before the shared format stored NumPy's cached gaussian as 'gauss'."""
    import numpy as np

    from dcpnas.utils.runstate import rng_state, set_rng_state

    state = rng_state()
    state["numpy"] = {k if k != "cached" else "gauss": v for k, v in state["numpy"].items() if k != "name"}
    expected = np.random.rand(3)
    set_rng_state(state)
    assert np.allclose(np.random.rand(3), expected)


def test_first_non_finite_names_the_tensor():
    from dcpnas.utils.finite import first_non_finite

    state = {"net": {"w": torch.ones(2), "bn.running_var": torch.tensor([1.0, float("inf")])},
             "opt": [{"step": torch.tensor(3)}]}
    assert first_non_finite(state) == "net.bn.running_var"
    state["net"]["bn.running_var"][1] = 0.0
    assert first_non_finite(state) is None
