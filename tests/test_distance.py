import itertools
import random

import numpy as np
import pytest
import torch

from harness.spaces.distance import architecture_distance, pairwise_distances
from harness.spaces.nonsequential import NonSequentialSpace
from harness.spaces.sequential import SequentialSpace

SEQ_OPS = ("lgd", "net", "roll", "noise")
NONSEQ_OPS = ("lgd", "net", "roll", "noise", "zero")


def _hamming(u, v, weights):
    """Algorithm 3 of the DARTOpti thesis, literally: mean over entries of (w_i if u_i != v_i else 0)."""
    return sum(w if a != b else 0.0 for a, b, w in zip(u, v, weights)) / len(u)


def _onehot(name, ops):
    return [int(name == op) for op in ops]


def _brute_force(a, b, ops, weights=None):
    """Reference M: explicit sup/inf loops over the cells' edge sets (Eqs 4.6-4.8)."""
    weights = [1.0] * len(ops) if weights is None else weights
    cells_a = [[x] for x in a] if isinstance(a[0], str) else a
    cells_b = [[x] for x in b] if isinstance(b[0], str) else b
    total = 0.0
    for ca, cb in zip(cells_a, cells_b):
        xa = {tuple(_onehot(e, ops)) for e in ca}
        xb = {tuple(_onehot(e, ops)) for e in cb}
        d_ab = max(min(_hamming(x, y, weights) for y in xb) for x in xa)
        d_ba = max(min(_hamming(x, y, weights) for x in xa) for y in xb)
        total += max(d_ab, d_ba)
    return total / len(cells_a)


def test_hand_computed_sequential():
    # one layer differs out of 4; one-hot vectors over 4 ops differ in 2 entries: edge distance 2/4
    a = ["lgd", "lgd", "net", "roll"]
    b = ["lgd", "net", "net", "roll"]
    assert architecture_distance(a, b, SEQ_OPS) == pytest.approx((2 / 4) / 4)
    # per-op weights: the differing entries are lgd (w=1) and net (w=3): (1 + 3) / 4, averaged over 4 layers
    assert architecture_distance(a, b, SEQ_OPS, op_weights=[1.0, 3.0, 5.0, 7.0]) == pytest.approx((4 / 4) / 4)
    assert architecture_distance(a, b, SEQ_OPS, op_weights={"lgd": 1, "net": 3, "roll": 5, "noise": 7}) == (
        pytest.approx(0.25)
    )


def test_hand_computed_hausdorff_cell():
    ops = ("a", "b", "c")
    # cell X = {a, b}, cell Y = {a}: from b the nearest in Y is a at 2/3; from a the nearest in X is 0
    assert architecture_distance([["a", "b"]], [["a", "a"]], ops) == pytest.approx(2 / 3)
    # the weighted case: w = (1, 2, 4); d(b, a) = (1 + 2)/3, d(c, a) = (1 + 4)/3, d(b, c) = (2 + 4)/3
    w = [1.0, 2.0, 4.0]
    # X = {b}, Y = {a, c}: sup_x inf_y = d(b, a) = 1; sup_y inf_x = max(d(a,b), d(c,b)) = 2
    assert architecture_distance([["b", "b"]], [["a", "c"]], ops, op_weights=w) == pytest.approx(2.0)
    # two cells: mean of the cell distances
    assert architecture_distance([["b", "b"], ["a", "a"]], [["a", "c"], ["a", "a"]], ops, op_weights=w) == (
        pytest.approx(1.0)
    )


def test_multi_hot_edges():
    ops = ("a", "b", "c", "d")
    # {a, b} vs {a}: differ only at b -> 1/4
    assert architecture_distance([("a", "b")], [("a",)], ops) == pytest.approx(0.25)
    # in a cell: {ab, c} vs {a, c}: from ab the nearest is a (1/4), from a the nearest is ab (1/4)
    assert architecture_distance([[("a", "b"), "c"]], [["a", "c"]], ops) == pytest.approx(0.25)


def test_matches_brute_force_and_metric_properties():
    rng = torch.Generator().manual_seed(0)
    seq, nonseq = SequentialSpace(6), NonSequentialSpace(n_cells=2, n_states=3)
    cases = [(seq, SEQ_OPS, None), (nonseq, NONSEQ_OPS, None), (nonseq, NONSEQ_OPS, [0.5, 2.0, 1.0, 3.0, 0.1])]
    for space, ops, weights in cases:
        # restrict to few ops so that equal and near-equal genotypes occur
        genos = [space.random_genotype(ops[:3], rng) for _ in range(12)]
        genos.append(genos[0])
        d = pairwise_distances(genos, ops, op_weights=weights)
        for i, j in itertools.product(range(len(genos)), repeat=2):
            assert d[i, j] == pytest.approx(_brute_force(genos[i], genos[j], ops, weights), abs=1e-12)
        np.testing.assert_array_equal(d, d.T)
        assert np.all(np.diag(d) == 0)
        assert d[0, -1] == 0.0
        for i, j, k in itertools.product(range(len(genos)), repeat=3):
            assert d[i, j] <= d[i, k] + d[k, j] + 1e-12


def test_identity_of_indiscernibles():
    random.seed(0)
    for _ in range(50):
        a = [random.choice(SEQ_OPS) for _ in range(5)]
        b = [random.choice(SEQ_OPS) for _ in range(5)]
        assert (architecture_distance(a, b, SEQ_OPS) == 0.0) == (a == b)
    # non-sequential: zero exactly when every cell has the same *set* of edge ops (edge order ignored, Eq. 4.6)
    a = [["lgd", "net", "zero"], ["roll", "roll", "net"]]
    assert architecture_distance(a, [["zero", "lgd", "net"], ["net", "roll", "net"]], NONSEQ_OPS) == 0.0
    assert architecture_distance(a, [["zero", "lgd", "lgd"], ["net", "roll", "net"]], NONSEQ_OPS) > 0.0


def test_errors():
    with pytest.raises(ValueError):
        architecture_distance(["lgd"], ["conv"], SEQ_OPS)
    with pytest.raises(ValueError):
        architecture_distance([["lgd"]], [["lgd"], ["net"]], SEQ_OPS)
    with pytest.raises(ValueError):
        architecture_distance(["lgd"], ["net"], SEQ_OPS, op_weights=[1.0, 2.0])


def test_darts_cell_genotype_is_two_cells_of_kept_edge_ops():
    """A DARTS genotype (JSON form) is its normal and reduction cell, each the set of its kept
    edges' ops; the input nodes do not enter. Reference: the brute force on those op lists."""
    ops = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    a = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["sep_conv_3x3", 2], ["sep_conv_3x3", 0]],
         "normal_concat": [2, 3], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]], "reduce_concat": [2]}
    b = {"normal": [["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 2], ["sep_conv_3x3", 1]],
         "normal_concat": [2, 3], "reduce": [["max_pool_3x3", 1], ["skip_connect", 0]], "reduce_concat": [2]}
    as_cells = [[["sep_conv_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_3x3"], ["max_pool_3x3"] * 2],
                [["sep_conv_3x3"] * 4, ["max_pool_3x3", "skip_connect"]]]
    expected = _brute_force(as_cells[0], as_cells[1], ops)
    assert expected > 0  # both cells differ: skip in a's normal cell, skip in b's reduction cell
    assert architecture_distance(a, b, ops) == pytest.approx(expected)
    # the same ops on other input nodes: distance 0
    moved = {**a, "normal": [[op, 1 - i % 2] for i, (op, _) in enumerate(a["normal"])]}
    assert architecture_distance(a, moved, ops) == 0.0
    assert pairwise_distances([a, b, a], ops)[0, 2] == 0.0
