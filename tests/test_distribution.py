"""Genotype sets as distributions (space/distribution.py): frequencies, the consensus, agreement, the
total-variation distance and its permutation test, on hand-made genotypes whose answers are worked
out by hand (docs/METHOD.md#consensus)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dcpnas.space import PRIMITIVES, Genotype, edge_index
from dcpnas.space import distribution as dist
from dcpnas.space.named import NAMED_GENOTYPES

REDUCE = NAMED_GENOTYPES["DARTS_V2"].reduce


def geno(*nodes, reduce=REDUCE) -> Genotype:
    """A genotype whose normal cell has the given nodes: each ((op, input), (op, input))."""
    normal = [gene for node in nodes for gene in node]
    return Genotype(normal, [2, 3, 4, 5], reduce, [2, 3, 4, 5])


S3, S5, MP, AP, SK = "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3", "avg_pool_3x3", "skip_connect"
# Nodes 4 and 5 kept the same in the hand-made sets below.
N4 = ((S3, 0), (S3, 1))
N5 = ((S3, 0), (S3, 1))


def test_frequency_counts_each_edge_and_op():
    a = geno(((S3, 0), (S5, 1)), ((S3, 0), (MP, 2)), N4, N5)
    b = geno(((S3, 0), (S3, 1)), ((S3, 1), (MP, 2)), N4, N5)
    F = dist.frequency([a, b])["normal"]
    assert F[edge_index(0, 0), PRIMITIVES.index(S3)] == 2
    assert F[edge_index(0, 1), PRIMITIVES.index(S5)] == 1
    assert F[edge_index(0, 1), PRIMITIVES.index(S3)] == 1
    assert F[edge_index(1, 2), PRIMITIVES.index(MP)] == 2
    assert F.sum() == 2 * 8 and F[:, PRIMITIVES.index("none")].sum() == 0
    assert dist.frequency([a, b])["reduce"].sum() == 16


def _alphas(strong: dict[tuple[int, str], float]):
    """α (normal, reduce) zero except the given (edge row, op) entries."""
    normal = np.zeros((14, len(PRIMITIVES)))
    for (e, op), v in strong.items():
        normal[e, PRIMITIVES.index(op)] = v
    return [normal.tolist(), np.zeros((14, len(PRIMITIVES))).tolist()]


def test_consensus_by_frequency_then_mean_softmax():
    # Node 2: edge 0 carries S3, S3, S5 -> S3 (2 of 3); edge 1 carries S5 three times.
    # Node 3: edges 0, 1, 2 are each chosen twice -> by α: edge 2 strongest, then edge 1.
    # Node 4: edge 0 carries MP once and AP once (and S3 once) -> the op tie goes to α (AP).
    g1 = geno(((S3, 0), (S5, 1)), ((S3, 0), (S3, 1)), ((MP, 0), (S3, 1)), N5)
    g2 = geno(((S3, 0), (S5, 1)), ((S3, 0), (MP, 2)), ((AP, 0), (S3, 1)), N5)
    g3 = geno(((S5, 0), (S5, 1)), ((S3, 1), (MP, 2)), ((S3, 0), (S3, 1)), N5)
    strong = {(edge_index(1, 2), MP): 3.0, (edge_index(1, 1), S3): 2.0, (edge_index(2, 0), AP): 2.0}
    alphas = [_alphas(strong)] * 3
    g, choices = dist.consensus([g1, g2, g3], alphas)
    nodes = [set(g.normal[2 * k:2 * k + 2]) for k in range(4)]
    assert nodes[0] == {(S3, 0), (S5, 1)}
    assert nodes[1] == {(MP, 2), (S3, 1)}
    assert g.normal[2:4] == ((MP, 2), (S3, 1))          # strongest edge first
    assert nodes[2] == {(AP, 0), (S3, 1)}
    assert g.reduce == REDUCE
    by = {(c.node, c.input): c for c in choices if c.cell == "normal"}
    assert (by[(2, 0)].edge_count, by[(2, 0)].count) == (3, 2)
    assert (by[(2, 1)].edge_count, by[(2, 1)].count) == (3, 3)
    assert (by[(3, 2)].edge_count, by[(3, 2)].count) == (2, 2)
    assert (by[(4, 0)].edge_count, by[(4, 0)].count) == (3, 1)
    # Without α, ties go to the lower input and to PRIMITIVES order (max_pool before avg_pool).
    g, _ = dist.consensus([g1, g2, g3])
    assert set(g.normal[2:4]) == {(S3, 0), (S3, 1)}
    assert (MP, 0) in g.normal[4:6]


def test_consensus_of_identical_genotypes_is_that_genotype():
    g = NAMED_GENOTYPES["DDPNAS_MCN_2"]
    c, choices = dist.consensus([g] * 4)
    assert c == g
    assert all(ch.count == 4 and ch.edge_count == 4 for ch in choices)


def test_agreement_counts_majority_choices_and_pairwise_share():
    g1 = geno(((S3, 0), (S5, 1)), ((S3, 0), (S3, 1)), N4, N5)
    g2 = geno(((S3, 0), (S5, 1)), ((S3, 0), (MP, 2)), N4, N5)
    g3 = geno(((S5, 0), (S5, 1)), ((S3, 1), (MP, 2)), N4, N5)
    gs = [g1, g2, g3]
    _, choices = dist.consensus(gs)
    agr = dist.agreement(gs, choices)
    assert agr["threshold"] == 2 and agr["choices"] == 16
    # Node 2: S3@0 (2 of 3), S5@1 (3); node 3: its edges 0, 1, 2 are chosen twice each, so edges 0
    # and 1 (lower inputs), S3 on both (2 each); nodes 4, 5 and the reduce cell: 3 of 3.
    assert agr["majority_choices"] == 16
    assert agr["unanimous_choices"] == 1 + 4 + 8
    # Shared genes: g1~g2 15 (all but node 3's second), g1~g3 14 (S5@1, S3@1 of nodes 2-3),
    # g2~g3 14 (S5@1, MP@2) -> mean / 16.
    assert agr["pairwise"] == pytest.approx((15 + 14 + 14) / 3 / 16)
    assert dist.agreement_line(agr) == "consensus: 16 of 16 choices made by >= 2 of 3 replicas"
    assert dist.agreement_line(agr).isascii()
    assert dist.agreement([g1], dist.consensus([g1])[1])["pairwise"] is None


def test_distance_by_hand():
    a = geno(((S3, 0), (S5, 1)), N4, N4, N5)
    b = geno(((S3, 0), (MP, 1)), N4, N4, N5)          # one gene of one node differs
    # That node: p_A = {S3@0: ½, S5@1: ½}, p_B = {S3@0: ½, MP@1: ½}: TV = ½(½ + ½) = ½; mean of 8.
    assert dist.distance([a], [b]) == pytest.approx(0.5 / 8)
    assert dist.distance([a, b], [b, a]) == 0.0
    assert dist.distance([a, a], [a, b]) == pytest.approx(0.25 / 8)
    assert dist.distance([a], [b]) == dist.distance([b], [a])
    c = geno(((MP, 0), (AP, 1)), ((MP, 0), (AP, 1)), ((MP, 0), (AP, 1)), ((MP, 0), (AP, 1)),
             reduce=[(S3, 0), (S3, 1)] * 4)
    d = geno(N4, N4, N4, N5)
    assert dist.distance([c], [d]) == 1.0               # no gene in common


def _varied(ops: tuple[str, str], n: int) -> list[Genotype]:
    """n distinct genotypes built from the two ops only (inputs vary), reduce cell from them too."""
    out = []
    for k in range(n):
        x, y = ops if k % 2 else ops[::-1]
        nodes = [((x, 0), (y, 1)), ((y, k % 3), (x, (k % 3 + 1) % 3)), ((x, 0), (y, 3)), ((y, 1), (x, 4))]
        out.append(Genotype([g for node in nodes for g in node], [2, 3, 4, 5],
                            [g for node in nodes for g in node], [2, 3, 4, 5]))
    return out


def test_permutation_test_identical_sets_give_p_one():
    a = _varied((S3, S5), 6)
    r = dist.permutation_test(a, list(a))
    assert r["distance"] == 0.0 and r["p_value"] == 1.0
    assert r["method"] == "exact" and r["permutations"] == math.comb(12, 6)


def test_permutation_test_disjoint_sets_give_the_smallest_p():
    a, b = _varied((S3, S5), 6), _varied((MP, AP), 6)
    r = dist.permutation_test(a, b)
    assert r["distance"] == pytest.approx(1.0)
    # Exact over the 924 splits: only the observed split and its mirror reach d = 1.
    assert r["p_value"] == pytest.approx(2 / 924) == r["p_min"]
    # Unequal sizes: no mirror, one split of C(9, 4) = 126.
    r = dist.permutation_test(a[:4], b[:5])
    assert r["p_value"] == pytest.approx(1 / 126) == r["p_min"]
    # Too many splits to enumerate: random relabellings, p = 1 / (1 + n_perm).
    r = dist.permutation_test(_varied((S3, S5), 12), _varied((MP, AP), 12), n_perm=199, seed=3)
    assert r["method"] == "monte-carlo" and r["permutations"] == 199
    assert r["p_value"] == pytest.approx(1 / 200) == r["p_min"]


def test_permutation_test_between_is_a_p_value():
    a, b = _varied((S3, S5), 5), _varied((S3, MP), 5)
    r = dist.permutation_test(a, b)
    assert 0 < r["distance"] < 1 and r["p_min"] <= r["p_value"] <= 1
    # p is the share of the 252 splits at least as far apart as the observed one.
    X = dist.indicators(a + b)
    from itertools import combinations
    stats = []
    for chosen in combinations(range(10), 5):
        m = np.zeros(10, bool)
        m[list(chosen)] = True
        stats.append(np.abs(X[m].mean(0) - X[~m].mean(0)).sum() / 32)
    assert r["p_value"] == pytest.approx(np.mean(np.array(stats) >= r["distance"] - 1e-12))


def test_plot_frequency_writes_a_png(tmp_path):
    gs = _varied((S3, S5), 3)
    F = dist.frequency(gs)["normal"]
    path = dist.plot_frequency(F, 3, tmp_path / "f.png", title="t", marked=[(0, PRIMITIVES.index(S3))])
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_paired_test_identical_pairs_give_p_one():
    a = _varied((S3, S5), 6)
    r = dist.paired_test(a, list(a))
    assert r["distance"] == 0.0 and r["p_value"] == 1.0 and r["shared"] == 1.0
    assert r["method"] == "exact" and r["permutations"] == 2 ** 6 and r["p_min"] == pytest.approx(2 / 64)


def test_paired_test_disjoint_pairs_give_the_smallest_p():
    a, b = _varied((S3, S5), 6), _varied((MP, AP), 6)
    r = dist.paired_test(a, b)
    # Of the 64 swap patterns only none and all (mirrors) keep every S3/S5 cell on one side.
    assert r["distance"] == pytest.approx(1.0) and r["shared"] == 0.0
    assert r["p_value"] == pytest.approx(2 / 64) == r["p_min"]
    r = dist.paired_test(_varied((S3, S5), 15), _varied((MP, AP), 15), n_perm=199, seed=1)
    assert r["method"] == "monte-carlo" and r["p_value"] == pytest.approx(1 / 200) == r["p_min"]
    assert dist.paired_test(a[:1], b[:1])["p_value"] == 1.0 == dist.paired_test(a[:1], b[:1])["p_min"]
    with pytest.raises(ValueError):
        dist.paired_test(a, b[:5])


def test_paired_test_equals_its_definition_by_enumeration():
    """A consistent one-gene change per pair on top of pair-to-pair variety: p by brute force over
    the 2^5 swap patterns, each set rebuilt and measured with ``distance``."""
    from itertools import product

    a = _varied((S3, S5), 5)
    b = [Genotype([(MP, 0)] + list(g.normal[1:]), g.normal_concat, g.reduce, g.reduce_concat) for g in a]
    b[2] = a[2]                                   # one pair the method did not change
    r = dist.paired_test(a, b)
    observed = dist.distance(a, b)
    stats = []
    for swap in product((False, True), repeat=5):
        A = [y if s else x for x, y, s in zip(a, b, swap)]
        B = [x if s else y for x, y, s in zip(a, b, swap)]
        stats.append(dist.distance(A, B))
    assert r["distance"] == pytest.approx(observed)
    assert r["p_value"] == pytest.approx(sum(d >= observed - 1e-9 for d in stats) / 32)
    assert r["shared"] == pytest.approx((4 * 15 + 16) / 5 / 16)
    assert r["shared_by_pair"][2] == 1.0
