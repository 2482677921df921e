"""What the search loop asks of a method, and what every method is given."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...space import Genotype, derive_genotype
from ...utils.registry import Registry
from ..config import SearchConfig
from ..run.inputs import SearchData
from ..run.driver import PhaseDriver, epoch_length

__all__ = ["MethodContext", "SearchMethod", "REGISTRY"]

#: method name (``cfg.method``, ``--method``) -> class; each method module fills it with
#: ``@SearchMethod.register(name)`` as it loads (timm's ``@register_model``), and
#: ``dcpnas.search.methods`` loads them all.
REGISTRY: Registry = Registry("search method")


@dataclass
class MethodContext:
    cfg: SearchConfig
    data: SearchData
    device: torch.device


class SearchMethod:
    """A search algorithm as a sequence of epochs the loop checkpoints between.

    Subclasses build their learners in ``__init__`` and implement ``num_epochs``,
    ``run_epoch``, ``alphas``, ``final_accuracies``, ``state_dict``/``load_state_dict``.
    """

    name = "?"

    @staticmethod
    def register(*names: str):
        """Class decorator: the class runs the search methods ``names`` (its ``name`` is the first)."""
        def add(cls: type["SearchMethod"]) -> type["SearchMethod"]:
            for name in names:
                REGISTRY.register(name)(cls)
            cls.name = names[0]  # Registry names the class after the last one
            return cls
        return add

    def __init__(self, ctx: MethodContext):
        self.ctx = ctx
        self.cfg = ctx.cfg

    # -- the loop's interface -------------------------------------------------------------------
    def num_epochs(self) -> int:
        raise NotImplementedError

    def epoch_steps(self, epoch: int) -> int:
        """Batches the driver runs in ``epoch`` (for the progress bar)."""
        d = self.ctx.data
        return epoch_length(d.train, d.val, self.cfg.schedule.steps_per_epoch)

    def run_epoch(self, epoch: int, driver: PhaseDriver) -> dict:
        """Run epoch ``epoch`` (0-based) and return its record (metric means, where it was)."""
        raise NotImplementedError

    def alphas(self) -> list[torch.Tensor]:
        """The architecture the genotype is derived from: α (rows: edges, columns: PRIMITIVES), then β
        with edge normalisation (``Supernet.arch_parameters()`` order)."""
        raise NotImplementedError

    def genotype(self) -> Genotype:
        return derive_genotype(*self.alphas())   # α, then β under edge normalisation

    def networks(self) -> list[torch.nn.Module]:
        """Supernets whose BN statistics are averaged over ranks after each epoch."""
        return []

    def sync_tensors(self) -> list[torch.Tensor]:
        """Extra state kept identical across ranks (broadcast from rank 0 after each epoch)."""
        return []

    def final_accuracies(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError
