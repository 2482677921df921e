"""A set of genotypes (replicas of one search, or the seeds of one study configuration) read as a
distribution over the space (docs/METHOD.md#consensus).

* ``frequency``: per cell type, how many genotypes chose each (edge, op): an E × |PRIMITIVES| count
  matrix (``none`` is never chosen).
* ``consensus``: one genotype that keeps the two inputs of every node: its edges by how many
  genotypes chose them, then each edge's op by how many chose it there; ties by mean softmax(α).
* ``agreement``: how many of the consensus's choices a majority made, and the mean share of genes
  two genotypes have in common.
* ``distance``: mean total-variation distance between two sets' per-node choice distributions;
  ``permutation_test`` its p-value under exchangeable set labels.

Plain numbers only (numpy); α, where given, are nested lists or arrays of shape (14, 8) per cell.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .cell import NUM_EDGES, STEPS, edge_index
from .genotype import CELL_TYPES, Genotype
from .primitives import NONE_INDEX, PRIMITIVES

__all__ = ["CHOICES", "SLOTS", "frequency", "consensus", "agreement", "agreement_line",
           "majority", "indicators", "distance", "permutation_test", "paired_test", "plot_frequency", "save_png",
           "edge_names"]

#: (edge, op) choices of a genotype: two per intermediate node and cell type (16).
CHOICES = 2 * STEPS * len(CELL_TYPES)
#: Every (cell type, edge, op) a gene can take: the coordinates of ``indicators``.
SLOTS = [(cell, e, o) for cell in CELL_TYPES for e in range(NUM_EDGES)
         for o in range(len(PRIMITIVES)) if o != NONE_INDEX]
_SLOT = {s: k for k, s in enumerate(SLOTS)}
#: For the permutation test: enumerate every relabelling when there are at most this many.
EXACT_LIMIT = 20000


def edge_names() -> list[str]:
    """Row labels: 'i->j' with j the intermediate node's index in the cell (2..5)."""
    return [f"{i}->{node + 2}" for node in range(STEPS) for i in range(node + 2)]


def _genes(g: Genotype, cell: str) -> list[tuple[int, int, int]]:
    """(node, edge row, op column) of every gene of ``cell``."""
    genes, _ = g.cell(cell)
    return [(k // 2, edge_index(k // 2, inp), PRIMITIVES.index(op)) for k, (op, inp) in enumerate(genes)]


def frequency(genotypes: Sequence[Genotype]) -> dict[str, np.ndarray]:
    """Per cell type, ``F[e, o]`` = how many of ``genotypes`` put op ``o`` on edge ``e``."""
    out = {}
    for cell in CELL_TYPES:
        F = np.zeros((NUM_EDGES, len(PRIMITIVES)), dtype=np.int64)
        for g in genotypes:
            for _, e, o in _genes(g, cell):
                F[e, o] += 1
        out[cell] = F
    return out


def _softmax(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    z = np.exp(a - a.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def mean_softmax(alphas: Sequence[Optional[Sequence]]) -> Optional[dict[str, np.ndarray]]:
    """Per cell type the mean over the genotypes of softmax(α) per edge (the α they were derived
    from: [α_normal, α_reduce, (β...)], β ignored); None when no α is given."""
    given = [a for a in alphas if a is not None]
    if not given:
        return None
    return {cell: np.mean([_softmax(a[c]) for a in given], axis=0) for c, cell in enumerate(CELL_TYPES)}


def majority(k: int) -> int:
    """The smallest count that is more than half of ``k``."""
    return k // 2 + 1


@dataclass(frozen=True)
class Choice:
    """One gene of the consensus: its node (2..5), input, op, and how many genotypes chose the edge
    and the (edge, op); ``weight`` the mean softmax(α) of the op on the edge (None without α)."""

    cell: str
    node: int
    input: int
    op: str
    edge_count: int
    count: int
    weight: Optional[float]

    def as_dict(self) -> dict:
        return asdict(self)


def consensus(genotypes: Sequence[Genotype], alphas: Sequence[Optional[Sequence]] = ()
              ) -> tuple[Genotype, list[Choice]]:
    """The consensus genotype of ``genotypes`` and its 16 choices (docs/METHOD.md#consensus).

    Per cell type and node: the two incoming edges chosen by the most genotypes, ties by the larger
    mean over genotypes of the edge's strongest non-``none`` softmax(α) weight, then by the mean
    place the genotypes listed the edge in (first or second gene of the node), then the lower
    input; on each kept edge the op chosen there most often, ties by the larger mean softmax(α)
    of the op, then PRIMITIVES order. Genes are listed strongest edge first, as ``derive_genotype``
    lists them; the concatenated nodes are the most common list.
    """
    if not genotypes:
        raise ValueError("consensus of no genotypes")
    alphas = list(alphas) or [None] * len(genotypes)
    if len(alphas) != len(genotypes):
        raise ValueError(f"{len(alphas)} α for {len(genotypes)} genotypes")
    freq = frequency(genotypes)
    soft = mean_softmax(alphas)
    cells, choices = {}, []
    for cell in CELL_TYPES:
        F = freq[cell]
        W = soft[cell].copy() if soft is not None else np.zeros(F.shape)
        W[:, NONE_INDEX] = -1.0
        edge_count = np.zeros(NUM_EDGES, dtype=np.int64)
        second = np.zeros(NUM_EDGES)        # how often the edge was its node's second gene
        for g in genotypes:
            for k, (_, e, _) in enumerate(_genes(g, cell)):
                edge_count[e] += 1
                second[e] += k % 2
        rank = np.where(edge_count > 0, second / np.maximum(edge_count, 1), 2.0)
        genes = []
        for node in range(STEPS):
            rows = [edge_index(node, i) for i in range(node + 2)]
            kept = sorted(range(node + 2), key=lambda i: (-edge_count[rows[i]], -W[rows[i]].max(),
                                                           rank[rows[i]], i))[:2]
            for i in kept:
                e = rows[i]
                o = min((o for o in range(len(PRIMITIVES)) if o != NONE_INDEX),
                        key=lambda o: (-F[e, o], -W[e, o], o))
                genes.append((PRIMITIVES[o], i))
                choices.append(Choice(cell, node + 2, i, PRIMITIVES[o], int(edge_count[e]), int(F[e, o]),
                                      None if soft is None else float(W[e, o])))
        concat = Counter(g.cell(cell)[1] for g in genotypes).most_common(1)[0][0]
        cells[cell] = (genes, concat)
    return Genotype(cells["normal"][0], cells["normal"][1], cells["reduce"][0], cells["reduce"][1]), choices


def indicators(genotypes: Sequence[Genotype]) -> np.ndarray:
    """N × len(SLOTS) 0/1 matrix: row n marks the (cell type, edge, op) genes of genotype n."""
    X = np.zeros((len(genotypes), len(SLOTS)), dtype=np.float64)
    for n, g in enumerate(genotypes):
        for cell in CELL_TYPES:
            for _, e, o in _genes(g, cell):
                X[n, _SLOT[(cell, e, o)]] = 1.0
    return X


def agreement(genotypes: Sequence[Genotype], choices: Sequence[Choice]) -> dict:
    """How far the genotypes agree: the consensus choices made by a majority of them, and the mean
    over pairs of genotypes of the share of their 16 genes they have in common (None for one)."""
    k = len(genotypes)
    need = majority(k)
    X = indicators(genotypes)
    pairs = [float(X[a] @ X[b]) / CHOICES for a, b in itertools.combinations(range(k), 2)]
    return {"replicas": k, "choices": len(choices), "threshold": need,
            "majority_choices": sum(c.count >= need for c in choices),
            "unanimous_choices": sum(c.count == k for c in choices),
            "pairwise": float(np.mean(pairs)) if pairs else None}


def agreement_line(agr: dict) -> str:
    """The one-line summary, ASCII only: 'consensus: 13 of 16 choices made by >= 4 of 6 replicas'."""
    return (f"consensus: {agr['majority_choices']} of {agr['choices']} choices made by >= "
            f"{agr['threshold']} of {agr['replicas']} replicas")


def _tv(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """d for every row of the boolean ``mask`` (True: set A): (1/32)·Σ|mean_A − mean_B| over slots."""
    mask = np.atleast_2d(mask).astype(np.float64)
    mean_a = mask @ X / mask.sum(axis=1, keepdims=True)
    mean_b = (1.0 - mask) @ X / (1.0 - mask).sum(axis=1, keepdims=True)
    # A node's choice distribution puts 1/2 on each of its two genes; TV = ½ Σ|Δp|; mean over nodes.
    return np.abs(mean_a - mean_b).sum(axis=1) / (4.0 * STEPS * len(CELL_TYPES))


def _p_value(stats: np.ndarray, observed: float, exact: bool) -> float:
    """Share of the relabellings with d ≥ the observed d: of all of them (exact, the observed one
    among them), or (1 + hits) / (1 + n) over n random ones."""
    hits = int(np.sum(stats >= observed - 1e-9))
    return hits / len(stats) if exact else (1 + hits) / (1 + len(stats))


def distance(a: Sequence[Genotype], b: Sequence[Genotype]) -> float:
    """Mean over the 8 (cell type, node) of the total-variation distance between the two sets'
    distributions of the node's genes (0: the same frequencies, 1: no gene in common)."""
    if not a or not b:
        raise ValueError("distance needs two non-empty genotype sets")
    X = indicators(list(a) + list(b))
    mask = np.arange(len(X)) < len(a)
    return float(_tv(X, mask)[0])


def permutation_test(a: Sequence[Genotype], b: Sequence[Genotype], n_perm: int = 9999,
                     seed: int = 0) -> dict:
    """p-value of ``distance(a, b)`` when the set labels are exchangeable.

    The pooled genotypes are split again into sets of the same sizes: every split when there are at
    most ``max(n_perm, EXACT_LIMIT)`` of them (exact: p = share of splits with d ≥ observed, the
    observed split included), otherwise ``n_perm`` random ones (p = (1 + #{d ≥ observed}) /
    (1 + n_perm)). ``p_min`` is the smallest p the test can give.
    """
    if not a or not b:
        raise ValueError("permutation test needs two non-empty genotype sets")
    if n_perm < 1:
        raise ValueError("n_perm must be >= 1")
    X = indicators(list(a) + list(b))
    n, na = len(X), len(a)
    observed = float(_tv(X, np.arange(n) < na)[0])
    splits = math.comb(n, na)
    exact = splits <= max(n_perm, EXACT_LIMIT)
    if exact:
        masks = np.zeros((splits, n), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(n), na)):
            masks[row, list(chosen)] = True
        p_min = (2 if 2 * na == n else 1) / splits  # with equal sizes a split and its mirror tie
    else:
        rng = np.random.default_rng(seed)
        masks = np.zeros((n_perm, n), dtype=bool)
        for row in range(n_perm):
            masks[row, rng.permutation(n)[:na]] = True
        p_min = 1 / (1 + n_perm)
    return {"distance": observed, "p_value": _p_value(_tv(X, masks), observed, exact), "p_min": p_min,
            "method": "exact" if exact else "monte-carlo", "permutations": len(masks),
            "sizes": [na, n - na]}


def paired_test(a: Sequence[Genotype], b: Sequence[Genotype], n_perm: int = 9999, seed: int = 0) -> dict:
    """p-value of ``distance(a, b)`` when ``a[i]`` and ``b[i]`` are a pair (one seed, two methods)
    whose labels are exchangeable within the pair.

    The sets are rebuilt with some pairs swapped: every one of the 2^n swap patterns when there are
    at most ``max(n_perm, EXACT_LIMIT)`` of them (exact; a pattern and its complement give mirrored
    sets, so ``p_min`` = 2 / 2^n), otherwise ``n_perm`` random ones. ``shared`` is the mean share of
    the 16 genes the two cells of a pair have in common (1: the method never changed the cell).
    """
    if len(a) != len(b) or not a:
        raise ValueError("a paired test needs two non-empty genotype lists of one length")
    if n_perm < 1:
        raise ValueError("n_perm must be >= 1")
    n = len(a)
    X = indicators(list(a) + list(b))
    shared = [float(X[i] @ X[n + i]) / CHOICES for i in range(n)]
    observed = float(_tv(X, np.arange(2 * n) < n)[0])
    exact = 2 ** n <= max(n_perm, EXACT_LIMIT)
    if exact:
        swaps = np.array(list(itertools.product((False, True), repeat=n)), dtype=bool)
        p_min = min(2 / 2 ** n, 1.0)
    else:
        swaps = np.random.default_rng(seed).random((n_perm, n)) < 0.5
        p_min = 1 / (1 + n_perm)
    # Set A holds a_i where pair i is not swapped and b_i where it is.
    stats = _tv(X, np.concatenate([~swaps, swaps], axis=1))
    return {"distance": observed, "p_value": _p_value(stats, observed, exact), "p_min": p_min,
            "method": "exact" if exact else "monte-carlo", "permutations": len(swaps), "pairs": n,
            "shared": float(np.mean(shared)), "shared_by_pair": shared}


def plot_frequency(freq: np.ndarray, k: int, path: str | Path, *, title: str = "",
                   marked: Sequence[tuple[int, int]] = (), ax=None):
    """Heatmap of one cell type's edge × op counts over ``k`` genotypes (share of genotypes, the
    count written in each chosen cell); ``marked`` (edge, op) cells (the consensus) are boxed.
    Draws into ``ax`` when given (and returns it), else writes a PNG to ``path``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    cols = [o for o in range(len(PRIMITIVES)) if o != NONE_INDEX]
    share = freq[:, cols] / max(k, 1)
    own = ax is None
    if own:
        fig = Figure(figsize=(6.2, 6.0))
        ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for e in range(freq.shape[0]):
        for j, o in enumerate(cols):
            if freq[e, o]:
                ax.text(j, e, str(int(freq[e, o])), ha="center", va="center", fontsize=8,
                        color="white" if share[e, j] > 0.6 else "black")
    for e, o in marked:
        if o in cols:
            # Unclipped: a box on the frame (first edge, last op) would otherwise lose half its lines.
            ax.add_patch(Rectangle((cols.index(o) - 0.45, e - 0.45), 0.9, 0.9, fill=False, lw=2,
                                   edgecolor="#d62728", clip_on=False, zorder=3))
    ax.set_xticks(range(len(cols)), [PRIMITIVES[o] for o in cols], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(freq.shape[0]), edge_names(), fontsize=8)
    ax.set_ylabel("edge (input -> node)")
    if title:
        ax.set_title(title, fontsize=9)
    if not own:
        return ax
    fig.colorbar(im, ax=ax, fraction=0.04, label=f"share of {k} genotypes")
    return save_png(fig, path)


def save_png(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib Figure as a PNG, atomically."""
    import io

    from ..utils.io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(Path(path), buf.getvalue())
