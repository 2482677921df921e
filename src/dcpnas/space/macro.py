"""The macro skeleton shared by the supernet and derived networks: stem → cells → classifier.

Reduction cells sit at L//3 and 2L//3 and double the channels (DARTS). ``layout`` picks the stem:
``cifar`` (3×3 conv, stride 1, 3C channels; small images) or ``imagenet`` (two stride-2 stems,
as the authors' ImageNet model: 224 → 28 before the first cell).
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..kernels import BatchNorm2d

LAYOUTS = ("cifar", "imagenet")


def reduction_layers(layers: int) -> tuple[int, ...]:
    return (layers // 3, 2 * layers // 3)


def build_stem(layout: str, in_channels: int, C: int, stem_multiplier: int = 3):
    """Real-valued stem(s). Returns (stem0, stem1 or None, C_pp, C_p, first_reduction_prev)."""
    if layout == "cifar":
        C_stem = stem_multiplier * C
        stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
                             BatchNorm2d(C_stem))
        return stem, None, C_stem, C_stem, False
    if layout == "imagenet":
        stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
            BatchNorm2d(C // 2), nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), BatchNorm2d(C))
        stem1 = nn.Sequential(nn.ReLU(inplace=True),
                              nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), BatchNorm2d(C))
        return stem0, stem1, C, C, True
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def build_cells(layers: int, C: int, C_pp: int, C_p: int, reduction_prev: bool,
                make_cell: Callable[[int, int, int, bool, bool], nn.Module]):
    """Stack ``layers`` cells; ``make_cell(C_pp, C_p, C_cur, reduction, reduction_prev)``.

    Returns (cells, output channels).
    """
    cells = nn.ModuleList()
    C_cur = C
    reductions = reduction_layers(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            C_cur *= 2
        cell = make_cell(C_pp, C_p, C_cur, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_pp, C_p = C_p, cell.multiplier * C_cur
    return cells, C_p


class MacroNet(nn.Module):
    """Stem, cells and a real-valued linear classifier; subclasses say how a cell is called."""

    def __init__(self, layout: str, in_channels: int, num_classes: int, C: int, layers: int,
                 make_cell, stem_multiplier: int = 3):
        super().__init__()
        self.layout = layout
        self.C, self.layers, self.num_classes = C, layers, num_classes
        self.stem0, self.stem1, C_pp, C_p, red_prev = build_stem(layout, in_channels, C,
                                                                 stem_multiplier)
        self.cells, C_out = build_cells(layers, C, C_pp, C_p, red_prev, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, num_classes)

    def stems(self, x):
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        return s0, s1

    def head(self, s):
        return self.classifier(self.global_pooling(s).flatten(1))
