"""The network derived from a genotype: real-valued or 1-bit, CIFAR or ImageNet layout.

Stem and classifier are always real-valued (docs/METHOD.md#decision-scope); reductions sit at L//3
and 2L//3. As a backbone it follows timm's convention: ``forward_features`` gives the last cell's
unpooled output, ``forward_head`` pools and classifies, and ``features_only=True`` makes the network
return one feature map per resolution, described by ``feature_info`` (channels and reduction, i.e.
input size / feature size, of each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from ..binary import set_binary_weights
from .cell import DerivedCell
from .genotype import Genotype, load_genotype
from .macro import MacroNet, reduction_layers
from .primitives import OpStyle

__all__ = ["SIZES", "NetworkSize", "FeatureInfo", "DerivedNetwork", "build_network"]


@dataclass(frozen=True)
class NetworkSize:
    C: int
    layers: int
    note: str


# L is the authors' DCP-NAS-L (C 108, 10 cells). S is chosen so that its 1-bit conv weights take
# ≈4.1 MBit (measured with dcpnas profile on DDPNAS_MCN_2/ImageNet), the memory the paper reports
# for DCP-NAS-S (4.2 MBits, Table 4.4), which can only count the binary weights; M sits between.
# XS is the CPU proxy used by the quick presets.
SIZES: dict[str, NetworkSize] = {
    "XS": NetworkSize(16, 8, "CPU proxy (DARTS search-proxy width)"),
    "S": NetworkSize(62, 10, "≈4.1 MBit of 1-bit weights, as DCP-NAS-S (4.2 MBits, Table 4.4)"),
    "M": NetworkSize(84, 10, "between S and L"),
    "L": NetworkSize(108, 10, "DCP-NAS-L: the authors' model (C 108, 10 cells)"),
}


class FeatureInfo(list):
    """timm's ``feature_info``: one ``dict(num_chs, reduction, module)`` per feature map."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


class DerivedNetwork(MacroNet):
    """Stem → cells built from ``genotype`` → global pooling → linear classifier.

    features_only: no pooling or classifier; ``forward`` returns the feature maps ``out_indices``
    picks from ``feature_info`` (default: all of them, finest first).
    """

    def __init__(self, genotype: Genotype | str, *, binary: bool = True, in_channels: int = 3,
                 num_classes: int = 10, C: int = 16, layers: int = 8, layout: str = "cifar",
                 scope: str = "official", stem_multiplier: int = 3, features_only: bool = False,
                 out_indices: Sequence[int] | None = None):
        genotype = load_genotype(genotype)
        style = OpStyle(binary=binary, scope=scope, affine=True)

        def make_cell(C_pp, C_p, C_cur, reduction, reduction_prev):
            genes, concat = genotype.cell("reduce" if reduction else "normal")
            return DerivedCell(genes, concat, C_pp, C_p, C_cur, reduction, reduction_prev, style)

        super().__init__(layout, in_channels, num_classes, C, layers, make_cell, stem_multiplier)
        self.genotype = genotype
        self.binary = binary
        self.scope = scope
        stages = self._stage_ends()
        self.feature_info = FeatureInfo(info for _, info in stages)
        self.features_only = features_only
        if features_only:
            picked = range(len(stages)) if out_indices is None else out_indices
            try:  # negative indices count from the coarsest; the maps come finest first
                stages = [stages[i] for i in sorted({range(len(stages))[i] for i in picked})]
            except IndexError:
                raise ValueError(f"out_indices {tuple(picked)} out of range for {len(stages)} "
                                 f"feature maps") from None
            self.feature_info = FeatureInfo(info for _, info in stages)
            del self.global_pooling, self.classifier  # timm: a features-only model has no head
        self._out_cells = [i for i, _ in stages]

    def _stage_ends(self) -> list[tuple[int, dict]]:
        """(cell index, feature info) of the last cell at each resolution, finest first."""
        reduction = 1 if self.layout == "cifar" else 8  # the ImageNet stems reduce 224 -> 28
        C_cur, reductions, ends = self.C, reduction_layers(self.layers), []
        for i, cell in enumerate(self.cells):
            if i in reductions:
                C_cur, reduction = 2 * C_cur, 2 * reduction
            if i + 1 == len(self.cells) or (i + 1) in reductions:  # the last cell at this size
                ends.append((i, dict(num_chs=cell.multiplier * C_cur, reduction=reduction,
                                     module=f"cells.{i}")))
        return ends

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last cell's output, before pooling (timm's ``forward_features``)."""
        s0, s1 = self.stems(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.global_pooling(features).flatten(1)
        return pooled if pre_logits else self.classifier(pooled)

    def forward(self, x: torch.Tensor):
        if not self.features_only:
            return self.forward_head(self.forward_features(x))
        out, s0, s1 = [], *self.stems(x)
        for i, cell in enumerate(self.cells[:max(self._out_cells, default=-1) + 1]):
            s0, s1 = s1, cell(s0, s1)
            if i in self._out_cells:
                out.append(s1)
        return out

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            cell.drop_prob = prob

    def set_binary_weights(self, enabled: bool) -> None:
        """Step 1 of the two-step recipe uses real weights (binary activations only)."""
        set_binary_weights(self, enabled)


def build_network(genotype, size: str = "XS", *, binary: bool = True, in_channels: int = 3,
                  num_classes: int = 10, layout: str = "cifar", scope: str = "official",
                  C: int | None = None, layers: int | None = None, features_only: bool = False,
                  out_indices: Sequence[int] | None = None) -> DerivedNetwork:
    """A derived network of a named size (``C``/``layers`` override the size's values).

    ``features_only=True`` gives the backbone: a list of feature maps, one per resolution
    (``net.feature_info.channels()``, ``.reduction()``), as timm's ``create_model(...,
    features_only=True)``.
    """
    if size not in SIZES:
        raise ValueError(f"unknown network size {size!r}; expected one of {tuple(SIZES)}")
    s = SIZES[size]
    return DerivedNetwork(genotype, binary=binary, in_channels=in_channels, num_classes=num_classes,
                          C=C or s.C, layers=layers or s.layers, layout=layout, scope=scope,
                          features_only=features_only, out_indices=out_indices)
