"""DARTS cell space: genotype format, discretization rules, parameter-free count, params and FLOPs."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.spaces.darts_cell import (
    OP_NAMES,
    EvalConfig,
    EvalNetwork,
    Genotype,
    OpSettings,
    count_flops,
    count_parameter_free,
    count_params,
    derived_costs,
    discretize_darts,
    discretize_threshold,
    edge_index,
    genotype_from_json,
    genotype_from_str,
    genotype_mask,
    genotype_to_json,
    genotype_to_str,
    make_genotype,
    mask_to_edges,
)
from harness.spaces.darts_cell.ops import build_op

OPS = {name: i for i, name in enumerate(OP_NAMES)}

# Probabilities per edge (rest 0), in edge order; traps: 'none' strongest (e3, e11), ties (e1, e5/e6).
TABLE = [
    {"none": 0.6, "sep_conv_3x3": 0.3, "skip_connect": 0.1},  # e0: 0 -> 2
    {"none": 0.6, "max_pool_3x3": 0.2, "avg_pool_3x3": 0.2},  # e1: 1 -> 2 (tie: first op wins)
    {"none": 0.5, "dil_conv_3x3": 0.5},  # e2: 0 -> 3
    {"none": 0.99, "skip_connect": 0.01},  # e3: 1 -> 3
    {"sep_conv_5x5": 0.6},  # e4: 2 -> 3
    {"skip_connect": 0.4},  # e5: 0 -> 4
    {"avg_pool_3x3": 0.4},  # e6: 1 -> 4 (tie with e5: lower input first)
    {"dil_conv_5x5": 0.3},  # e7: 2 -> 4
    {"max_pool_3x3": 0.35},  # e8: 3 -> 4
    {"sep_conv_3x3": 0.1},  # e9: 0 -> 5
    {"sep_conv_3x3": 0.2},  # e10: 1 -> 5
    {"none": 1.0},  # e11: 2 -> 5
    {"dil_conv_5x5": 0.7},  # e12: 3 -> 5
    {"skip_connect": 0.8},  # e13: 4 -> 5
]
EXPECTED = [
    ("sep_conv_3x3", 0), ("max_pool_3x3", 1),
    ("sep_conv_5x5", 2), ("dil_conv_3x3", 0),
    ("skip_connect", 0), ("avg_pool_3x3", 1),
    ("skip_connect", 4), ("dil_conv_5x5", 3),
]


def table_weights() -> torch.Tensor:
    w = torch.zeros(14, 8)
    for e, row in enumerate(TABLE):
        for name, value in row.items():
            w[e, OPS[name]] = value
    return w


def test_darts_rule_on_hand_checked_probabilities_per_trial():
    w = table_weights()
    other = torch.zeros(14, 8)
    other[:, OPS["sep_conv_5x5"]] = torch.linspace(0.1, 0.9, 14)  # later edges stronger
    genotypes = discretize_darts(torch.stack([w, other]), torch.stack([other, w]), apply_softmax=False)
    assert len(genotypes) == 2
    assert genotypes[0].normal == EXPECTED and genotypes[1].reduce == EXPECTED
    assert genotypes[0].normal_concat == [2, 3, 4, 5]
    assert genotypes[1].normal == [
        ("sep_conv_5x5", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 2), ("sep_conv_5x5", 1),
        ("sep_conv_5x5", 3), ("sep_conv_5x5", 2), ("sep_conv_5x5", 4), ("sep_conv_5x5", 3),
    ]
    assert count_parameter_free(genotypes[0]) == 4  # max, skip, avg, skip
    assert count_parameter_free(genotypes) == [4, 0]


def test_darts_rule_ranks_edges_by_softmax_not_raw_alpha():
    alpha = torch.zeros(1, 14, 8)
    spread, peaked, wide = edge_index(3, 0), edge_index(3, 1), edge_index(3, 2)
    alpha[0, spread, OPS["sep_conv_3x3"] :] = 2.0  # raw max 2.0, softmax max 0.22
    alpha[0, peaked, OPS["sep_conv_3x3"]] = 1.5  # raw max 1.5, softmax max 0.53
    alpha[0, peaked, OPS["sep_conv_5x5"] :] = -5.0
    alpha[0, wide, 1:] = 1.8  # raw max 1.8, softmax max 0.14
    softmax = discretize_darts(alpha, alpha)[0].normal[2:4]
    raw = discretize_darts(alpha, alpha, apply_softmax=False)[0].normal[2:4]
    assert softmax == [("sep_conv_3x3", 1), ("sep_conv_3x3", 0)]
    assert raw == [("sep_conv_3x3", 0), ("max_pool_3x3", 2)]


def test_threshold_parsing_keeps_ops_above_the_sigmoid_threshold():
    alpha = torch.full((1, 14, 8), -10.0)
    e0, e1, e5 = edge_index(2, 0), edge_index(2, 1), edge_index(4, 0)
    alpha[0, e0, OPS["sep_conv_3x3"]] = 2.0  # sigmoid 0.881: kept
    alpha[0, e0, OPS["skip_connect"]] = 1.9  # 0.870: kept
    alpha[0, e0, OPS["max_pool_3x3"]] = 1.7  # 0.846: below 0.85
    alpha[0, e0, OPS["none"]] = 5.0  # 'none' is never kept
    alpha[0, e5, OPS["dil_conv_5x5"]] = 3.0
    keep = discretize_threshold(alpha)
    assert keep.shape == (1, 14, 8) and keep.dtype == torch.bool
    assert set(mask_to_edges(keep[0])) == {("sep_conv_3x3", 0, 2), ("skip_connect", 0, 2), ("dil_conv_5x5", 0, 4)}
    sparse = discretize_threshold(alpha, max_ops_per_edge=1)
    assert set(mask_to_edges(sparse[0])) == {("sep_conv_3x3", 0, 2), ("dil_conv_5x5", 0, 4)}
    alpha[0, e1, OPS["avg_pool_3x3"]] = 2.5
    per_node = discretize_threshold(alpha, max_ops_per_node=1)
    assert set(mask_to_edges(per_node[0])) == {("avg_pool_3x3", 1, 2), ("dil_conv_5x5", 0, 4)}
    assert count_parameter_free(keep).tolist() == [1]
    # a derived network can be built from any kept set; node 3 has no input and is zero
    edges = mask_to_edges(keep[0])
    net = EvalNetwork(((edges, [2, 3, 4, 5]), (edges, [2, 3, 4, 5])),
                      EvalConfig(n_cells=3, channels=4, auxiliary=False))
    assert net(torch.randn(2, 3, 8, 8))[0].shape == (2, 10)


def test_genotype_round_trips_through_json_and_its_printed_form():
    genotype = make_genotype(EXPECTED, list(reversed(EXPECTED)))
    assert isinstance(genotype, Genotype)
    assert genotype_from_json(json.loads(json.dumps(genotype_to_json(genotype)))) == genotype
    assert genotype_from_json(list(genotype)) == genotype
    text = genotype_to_str(genotype)
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('max_pool_3x3', 1),")
    assert "normal_concat=[2, 3, 4, 5]" in text
    assert genotype_from_str(text) == genotype
    darts_style = text.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert genotype_from_str(darts_style) == genotype
    with pytest.raises(ValueError):
        genotype_from_str("__import__('os').system('true')")


def test_genotype_mask_marks_exactly_the_kept_edges():
    genotype = make_genotype(EXPECTED, EXPECTED)
    normal, reduce = genotype_mask([genotype, genotype])
    assert normal.shape == (2, 14, 8) and normal.sum().item() == 16
    assert normal[0, edge_index(5, 4), OPS["skip_connect"]] == 1
    assert sorted(mask_to_edges(normal[0])) == sorted((op, i, 2 + n // 2) for n, (op, i) in enumerate(EXPECTED))


def test_params_and_flops_of_a_tiny_derived_network_by_hand():
    c, px = 4, 8
    op = build_op("sep_conv_3x3", 1, c, 1, OpSettings())
    # two (depthwise 3x3 + pointwise + affine BN) blocks: 2 (9C + C^2 + 2C) parameters
    assert sum(p.numel() for p in op.parameters()) == 2 * (9 * c + c * c + 2 * c) == 120
    counter = FlopCounterMode(display=False)
    with counter:
        op(torch.zeros(1, c, px, px))
    # 2 FLOPs per multiply-add: depthwise H W C 9, pointwise H W C^2, twice
    assert counter.get_total_flops() == 2 * 2 * (px * px * c * 9 + px * px * c * c) == 13312

    skips = [("skip_connect", 0), ("skip_connect", 1)] * 3
    genotype = make_genotype([("sep_conv_3x3", 0), ("skip_connect", 1)] + skips, [("max_pool_3x3", 0)] * 8)
    cfg = EvalConfig(n_cells=1, channels=c, reduction_cells=(), auxiliary=False)
    net = EvalNetwork(genotype, cfg)
    stem = 3 * 12 * 9 + 2 * 12  # 3x3 conv 3 -> 3C = 12 channels, affine BN
    pre = 12 * c + 2 * c  # each 1x1 ReLU-conv-BN 12 -> C
    classifier = 4 * c * 10 + 10  # concat of 4 nodes -> 10 classes
    assert count_params(net) == stem + 2 * pre + 120 + classifier == 750
    flops = 2 * (px * px * 12 * 27) + 2 * 2 * (px * px * c * 12) + 13312 + 2 * (4 * c * 10)
    assert count_flops(net, px) == flops == 67392
    assert derived_costs(genotype, cfg, px) == {"params": 750, "flops": 67392, "macs": 33696}
    with_aux = EvalNetwork(genotype, EvalConfig(n_cells=1, channels=c, reduction_cells=(), auxiliary_cell=0))
    assert count_params(with_aux) == 750 < count_params(with_aux, include_auxiliary=True)
