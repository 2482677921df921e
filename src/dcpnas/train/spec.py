"""``ModelSpec``: everything needed to rebuild a trained network, stored in every model file.

A spec is plain JSON-ready data (genotype dict, sizes, layout, scope, dataset facts, input
normalisation), so checkpoints load with ``torch.load(weights_only=True)`` and the packed export
can carry it in its JSON header.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch.nn as nn

from ..config.limits import MAX_C, MAX_LAYERS
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
    stem_multiplier: int = 3           # stem width = stem_multiplier·C (files before it: 3)

    def build(self) -> nn.Module:
        """A fresh ``DerivedNetwork`` of this spec (random weights), binary-weight mode as saved."""
        from ..space.genotype import from_dict as genotype_from_dict
        from ..space.network import DerivedNetwork

        net = DerivedNetwork(genotype_from_dict(self.genotype, "model spec"), binary=self.binary,
                             in_channels=self.in_channels, num_classes=self.num_classes, C=self.C,
                             layers=self.layers, layout=self.layout, scope=self.scope,
                             stem_multiplier=self.stem_multiplier)
        if self.binary:
            net.set_binary_weights(self.binary_weights)
        return net

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def estimate(self, what: str, *, batch: int = 1, training: bool = False):
        """The memory this network takes (``dcpnas.utils.budget``) for ``batch`` images."""
        from ..utils.budget import network_estimate

        return network_estimate(what, C=self.C, layers=self.layers, image_size=self.image_size,
                                in_channels=self.in_channels, num_classes=self.num_classes, layout=self.layout,
                                batch=batch, stem_multiplier=self.stem_multiplier, training=training)

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
        missing = sorted(n for n in names - data.keys() if n not in _OPTIONAL)
        if missing:
            raise DataError(f"{source}: the model spec lacks {', '.join(missing)}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"{source}: unknown model spec field(s) {', '.join(unknown)} "
                            f"(written by a newer dcpnas?)")
        kw = dict(data)
        _check_types(kw, source)
        kw["mean"], kw["std"] = tuple(float(v) for v in kw["mean"]), tuple(float(v) for v in kw["std"])
        spec = cls(**kw)
        from ..utils.budget import check_budget

        # Before the network is built: a small file must not make it allocate what no machine has.
        check_budget(spec.estimate(f"{source}: the network of its spec (C={spec.C}, layers={spec.layers}, "
                                   f"{spec.image_size}px)"), error=DataError)
        return spec


# The type and range of every field, checked before a network is built from a file's spec (a crafted
# file must be one line of error, not a traceback from deep inside the network's constructor).
_INTS = {"C": (1, MAX_C), "layers": (1, MAX_LAYERS), "in_channels": (1, 64), "num_classes": (1, 1_000_000),
         "image_size": (1, 65536), "stem_multiplier": (1, 16)}
# Fields a spec may lack (written before they existed); the dataclass default applies.
_OPTIONAL = ("size", "binary_weights", "stem_multiplier")
def _choices() -> dict:
    from ..space.macro import LAYOUTS
    from ..space.primitives import SCOPES

    return {"layout": tuple(LAYOUTS), "scope": tuple(SCOPES)}


def _check_types(kw: dict, source: str) -> None:
    def bad(key: str, want: str) -> DataError:
        return DataError(f"{source}: model spec field {key!r} must be {want}, got {kw[key]!r:.60}")

    if not isinstance(kw["genotype"], Mapping):
        raise bad("genotype", "a table (a genotype in JSON form)")
    for key, (lo, hi) in _INTS.items():
        if key not in kw and key in _OPTIONAL:
            continue
        v = kw[key]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise bad(key, f"an integer in {lo}..{hi}")
    for key, choices in _choices().items():
        if kw[key] not in choices:
            raise bad(key, " or ".join(choices))
    for key in ("binary", "binary_weights"):
        if key in kw and not isinstance(kw[key], bool):
            raise bad(key, "true or false")
    for key in ("dataset",) + (("size",) if kw.get("size") is not None else ()):
        if not isinstance(kw[key], str):
            raise bad(key, "a string")
    for key in ("mean", "std"):
        v = kw[key]
        if (not isinstance(v, (list, tuple)) or len(v) != kw["in_channels"]
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                           for x in v)):
            raise bad(key, f"a list of {kw['in_channels']} finite numbers (one per input channel)")
    if not all(x > 0 for x in kw["std"]):
        raise bad("std", "positive")
