"""The network derived from a genotype: real-valued or 1-bit, CIFAR or ImageNet layout.

Stem and classifier are always real-valued (section 7.4); reductions sit at L//3 and 2L//3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..binary import set_binary_weights
from .cell import DerivedCell
from .genotype import Genotype, load_genotype
from .macro import MacroNet
from .primitives import OpStyle


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


class DerivedNetwork(MacroNet):
    """Stem → cells built from ``genotype`` → global pooling → linear classifier."""

    def __init__(self, genotype: Genotype | str, *, binary: bool = True, in_channels: int = 3,
                 num_classes: int = 10, C: int = 16, layers: int = 8, layout: str = "cifar",
                 scope: str = "official", stem_multiplier: int = 3):
        genotype = load_genotype(genotype)
        style = OpStyle(binary=binary, scope=scope, affine=True)

        def make_cell(C_pp, C_p, C_cur, reduction, reduction_prev):
            genes, concat = genotype.cell("reduce" if reduction else "normal")
            return DerivedCell(genes, concat, C_pp, C_p, C_cur, reduction, reduction_prev, style)

        super().__init__(layout, in_channels, num_classes, C, layers, make_cell, stem_multiplier)
        self.genotype = genotype
        self.binary = binary
        self.scope = scope

    def forward(self, x):
        s0, s1 = self.stems(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            cell.drop_prob = prob

    def set_binary_weights(self, enabled: bool) -> None:
        """Step 1 of the two-step recipe uses real weights (binary activations only)."""
        set_binary_weights(self, enabled)


def build_network(genotype, size: str = "XS", *, binary: bool = True, in_channels: int = 3,
                  num_classes: int = 10, layout: str = "cifar", scope: str = "official",
                  C: int | None = None, layers: int | None = None) -> DerivedNetwork:
    """A derived network of a named size (``C``/``layers`` override the size's values)."""
    if size not in SIZES:
        raise ValueError(f"unknown network size {size!r}; expected one of {tuple(SIZES)}")
    s = SIZES[size]
    return DerivedNetwork(genotype, binary=binary, in_channels=in_channels, num_classes=num_classes,
                          C=C or s.C, layers=layers or s.layers, layout=layout, scope=scope)
