"""Named genotypes: the DARTS reference cells and the authors' DCP-NAS-L cell."""

from __future__ import annotations

from .genotype import NAMED_GENOTYPES, Genotype

_CONCAT = (2, 3, 4, 5)

# DARTS (Liu et al., ICLR 2019), first- and second-order search on CIFAR-10.
DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=_CONCAT,
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=_CONCAT)

DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=_CONCAT,
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=_CONCAT)

# DCP-NAS-L, as searched by the authors (utils/genotypes_m.py of their repository;
# docs/METHOD.md#decision-training).
DDPNAS_MCN_2 = Genotype(
    normal=[("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("dil_conv_3x3", 2), ("skip_connect", 0),
            ("sep_conv_3x3", 3), ("avg_pool_3x3", 1), ("dil_conv_3x3", 4), ("avg_pool_3x3", 3)],
    normal_concat=_CONCAT,
    reduce=[("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("dil_conv_3x3", 1), ("sep_conv_3x3", 0),
            ("max_pool_3x3", 1), ("dil_conv_5x5", 2), ("dil_conv_5x5", 2), ("sep_conv_5x5", 1)],
    reduce_concat=_CONCAT)

NAMED_GENOTYPES.update({
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "DDPNAS_MCN_2": DDPNAS_MCN_2,
    "DCP_NAS_L": DDPNAS_MCN_2,
})
