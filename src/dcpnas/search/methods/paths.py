"""Single-path architectures for the sampling baselines: genotype ↔ path ↔ α.

A *path* is, per cell type, one index into PRIMITIVES for each of the 14 edges
(``Supernet.forward(x, paths=(normal, reduce))``); ``none`` switches an edge off.
"""

from __future__ import annotations

import torch

from ...space import NUM_EDGES, PRIMITIVES, STEPS, Genotype, edge_index
from ...space.genotype import CELL_TYPES

NONE = PRIMITIVES.index("none")
CHOICES = [i for i, p in enumerate(PRIMITIVES) if p != "none"]

__all__ = ["genotype_paths", "genotype_to_alphas", "random_genotype"]


def genotype_paths(genotype: Genotype) -> tuple[list[int], list[int]]:
    """The one-hot sub-network of a genotype: its genes' ops, ``none`` on every other edge."""
    paths = []
    for cell in CELL_TYPES:
        path = [NONE] * NUM_EDGES
        genes, _ = genotype.cell(cell)
        for k, (op, inp) in enumerate(genes):
            path[edge_index(k // 2, inp)] = PRIMITIVES.index(op)
        paths.append(path)
    return paths[0], paths[1]


def genotype_to_alphas(genotype: Genotype) -> list[torch.Tensor]:
    """α whose DARTS parsing (``derive_genotype``) gives back ``genotype``: per node the first gene's
    op gets 2, the second's 1, everything else 0."""
    alphas = []
    for cell in CELL_TYPES:
        a = torch.zeros(NUM_EDGES, len(PRIMITIVES))
        genes, _ = genotype.cell(cell)
        for k, (op, inp) in enumerate(genes):
            a[edge_index(k // 2, inp), PRIMITIVES.index(op)] = 2.0 - (k % 2)
        alphas.append(a)
    return alphas


def random_genotype(generator: torch.Generator) -> Genotype:
    """A uniformly random genotype of the space: per node two distinct inputs, a non-``none`` op each."""
    cells = []
    for _ in CELL_TYPES:
        genes = []
        for node in range(STEPS):
            inputs = torch.randperm(node + 2, generator=generator)[:2].tolist()
            ops = torch.randint(len(CHOICES), (2,), generator=generator).tolist()
            genes += [(PRIMITIVES[CHOICES[o]], i) for o, i in zip(ops, inputs)]
        cells.append(genes)
    concat = list(range(2, STEPS + 2))
    return Genotype(cells[0], concat, cells[1], concat)
