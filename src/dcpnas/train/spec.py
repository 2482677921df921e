"""``ModelSpec``: everything needed to rebuild a trained network, stored in every model file.

A spec is plain JSON-ready data (genotype dict, sizes, layout, scope, dataset facts, input
normalisation), so checkpoints load with ``torch.load(weights_only=True)`` and the packed export
can carry it in its JSON header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch.nn as nn

from ..errors import DataError

__all__ = ["ModelSpec", "MODEL_FORMAT"]

#: ``format`` of the model files written by ``dcpnas train`` (model.pt, step1.pt).
MODEL_FORMAT = "dcpnas-model/1"


@dataclass(frozen=True)
class ModelSpec:
    genotype: dict                     # Genotype.to_dict()
    C: int
    layers: int
    layout: str                        # cifar | imagenet
    scope: str                         # official | book
    binary: bool
    in_channels: int
    num_classes: int
    image_size: int
    dataset: str
    mean: tuple[float, ...]            # input normalisation, [0,1] units (x/255 − mean) / std
    std: tuple[float, ...]
    size: str | None = None            # the named size it came from (informational)
    binary_weights: bool = True        # False while step 1 runs (real weights, binary activations)

    def build(self) -> nn.Module:
        """A fresh ``DerivedNetwork`` of this spec (random weights), binary-weight mode as saved."""
        from ..space.genotype import from_dict as genotype_from_dict
        from ..space.network import DerivedNetwork

        net = DerivedNetwork(genotype_from_dict(self.genotype, "model spec"), binary=self.binary,
                             in_channels=self.in_channels, num_classes=self.num_classes, C=self.C,
                             layers=self.layers, layout=self.layout, scope=self.scope)
        if self.binary:
            net.set_binary_weights(self.binary_weights)
        return net

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def replace(self, **changes) -> "ModelSpec":
        data = asdict(self)
        data.update(changes)
        return ModelSpec(**data)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "checkpoint") -> "ModelSpec":
        if not isinstance(data, Mapping):
            raise DataError(f"{source}: the model spec is missing or not a table")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names - data.keys() if n not in ("size", "binary_weights"))
        if missing:
            raise DataError(f"{source}: the model spec lacks {', '.join(missing)}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"{source}: unknown model spec field(s) {', '.join(unknown)} "
                            f"(written by a newer dcpnas?)")
        kw = dict(data)
        kw["mean"], kw["std"] = tuple(float(v) for v in kw["mean"]), tuple(float(v) for v in kw["std"])
        return cls(**kw)
