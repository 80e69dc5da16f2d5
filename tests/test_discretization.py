"""Defining properties of the discretization rules (argmax, top-k edges, threshold, DARTS+PT)."""

from __future__ import annotations

import itertools

import pytest
import torch

from harness.methods.discretization import (
    ArgmaxDiscretization,
    PerturbationSelection,
    ThresholdDiscretization,
    TopKEdges,
)
from harness.spaces.nonsequential import NonSequentialSpace
from harness.spaces.sequential import SequentialSpace

NS_OPS = ("lgd", "net", "zero")
SEQ_OPS = ("lgd", "net", "roll", "noise")


def test_argmax_accepts_probe_argument():
    space = SequentialSpace(n_layers=3)
    probs = torch.tensor([[0.1, 0.9, 0, 0], [0.6, 0.2, 0.1, 0.1], [0, 0, 0.3, 0.7]])
    assert ArgmaxDiscretization().genotype(space, probs, SEQ_OPS, probe=None) == ["net", "lgd", "noise"]


# ---------------------------------------------------------------- TopKEdges


def test_top_k_edges_hand_built():
    # 1 cell, 3 states: edges (0,1) (0,2) (1,2) (0,3) (1,3) (2,3)
    space = NonSequentialSpace(n_cells=1, n_states=3)
    probs = torch.tensor(
        [
            [0.1, 0.1, 0.8],  # 0->1: sole incoming edge, kept with its best non-zero op (tie: first)
            [0.02, 0.08, 0.9],  # 0->2: zero dominates, but node 2 has only 2 inputs -> kept as 'net'
            [0.3, 0.2, 0.5],  # 1->2
            [0.15, 0.05, 0.8],  # 0->3: weakest non-zero op (0.15) -> dropped
            [0.5, 0.3, 0.2],  # 1->3: lgd 0.5
            [0.2, 0.4, 0.4],  # 2->3: net 0.4
        ]
    )
    geno = TopKEdges(k=2).genotype(space, probs, NS_OPS)
    assert geno == [["lgd", "net", "lgd", "zero", "lgd", "net"]]
    # k=1: node 2 keeps 1->2 (0.3 > 0.08), node 3 keeps 1->3 (0.5)
    assert TopKEdges(k=1).genotype(space, probs, NS_OPS) == [["lgd", "zero", "lgd", "zero", "lgd", "zero"]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_edges_keeps_k_strongest_per_node_brute_force(k):
    space = NonSequentialSpace()  # 2 cells x 15 edges
    ops = ("lgd", "net", "roll", "noise", "zero")
    probs = torch.softmax(torch.randn(space.n_positions, 5, generator=torch.Generator().manual_seed(k)), -1)
    flat = space.flatten(TopKEdges(k=k).genotype(space, probs, ops))
    strength = probs[:, :4].max(-1)
    n = len(space.edge_list)
    for c in range(space.n_cells):
        for target in range(1, space.n_states + 1):
            incoming = [c * n + e for e, (_, t) in enumerate(space.edge_list) if t == target]
            kept = [p for p in incoming if flat[p] != "zero"]
            assert len(kept) == min(k, len(incoming))
            best_sum = max(
                sum(float(strength.values[p]) for p in s) for s in itertools.combinations(incoming, len(kept))
            )
            assert sum(float(strength.values[p]) for p in kept) == pytest.approx(best_sum)
            for p in kept:
                assert flat[p] == ops[int(strength.indices[p])]


def test_top_k_edges_rejects_sequential_space_and_missing_zero():
    with pytest.raises(ValueError, match="non-sequential"):
        TopKEdges().genotype(SequentialSpace(3), torch.full((3, 4), 0.25), SEQ_OPS)
    space = NonSequentialSpace(n_cells=1, n_states=3)
    with pytest.raises(ValueError, match="zero"):
        TopKEdges().genotype(space, torch.full((6, 2), 0.5), ("lgd", "net"))


# ---------------------------------------------------------------- Threshold


def test_threshold_hand_built_nonsequential():
    space = NonSequentialSpace(n_cells=1, n_states=3)
    # sigmoid-like, non-exclusive probabilities
    probs = torch.tensor(
        [
            [0.90, 0.10, 0.10],  # lgd above threshold
            [0.86, 0.95, 0.10],  # both above: the larger (net)
            [0.80, 0.84, 0.99],  # none of the real ops above -> 'zero'
            [0.85, 0.10, 0.10],  # exactly at threshold is not above -> 'zero'
            [0.88, 0.20, 0.97],  # zero above too, but a real op passes: keep lgd
            [0.10, 0.10, 0.10],  # nothing -> 'zero'
        ]
    )
    assert ThresholdDiscretization(0.85).genotype(space, probs, NS_OPS) == [
        ["lgd", "net", "zero", "zero", "lgd", "zero"]
    ]
    assert ThresholdDiscretization(0.5).genotype(space, probs, NS_OPS)[0][2] == "net"


def test_threshold_sequential_falls_back_to_argmax():
    space = SequentialSpace(n_layers=3)
    probs = torch.tensor([[0.9, 0.1, 0.1, 0.1], [0.3, 0.6, 0.2, 0.1], [0.2, 0.1, 0.7, 0.95]])
    assert ThresholdDiscretization(0.85).genotype(space, probs, SEQ_OPS) == ["lgd", "net", "noise"]


def test_discretization_checks_shape():
    with pytest.raises(ValueError, match="shape"):
        ThresholdDiscretization().genotype(SequentialSpace(3), torch.zeros(4, 4), SEQ_OPS)


# ---------------------------------------------------------------- DARTS+PT


class FakeProbe:
    """Validation loss = base - sum_{p,k} imp[p,k] * w[p,k]: masking op k at p raises it by imp[p,k] w[p,k].

    After ``flip_after`` finetune calls the importance of ``flip_position`` changes, so the choice
    there depends on finetune having been called before that position is scored.
    """

    def __init__(self, imp, flipped_row, flip_position, flip_after=1):
        self.imp = imp.clone()
        self.flipped_row = flipped_row
        self.flip_position = flip_position
        self.flip_after = flip_after
        self.log = []
        self.n_finetune = 0

    def score(self, weights):
        self.log.append(("score", weights.clone()))
        return float(10.0 - (self.imp * weights).sum())

    def finetune(self, weights, steps):
        self.log.append(("finetune", weights.clone(), steps))
        self.n_finetune += 1
        if self.n_finetune == self.flip_after:
            self.imp[self.flip_position] = self.flipped_row


def test_perturbation_selection_picks_most_harmful_mask_and_finetunes_between_positions():
    space = SequentialSpace(n_layers=3)
    probs = torch.tensor(
        [
            [0.50, 0.30, 0.10, 0.10],  # argmax lgd
            [0.40, 0.35, 0.15, 0.10],  # argmax lgd
            [0.10, 0.20, 0.60, 0.10],  # argmax roll
        ]
    )
    imp = torch.tensor(
        [
            [1.0, 3.0, 0.5, 0.1],  # imp * w: 0.5, 0.9, 0.05, 0.01 -> net
            [0.2, 1.0, 0.1, 5.0],  # 0.08, 0.35, 0.015, 0.5 -> noise
            [1.0, 1.0, 1.0, 1.0],  # before finetune: roll; flipped below
        ]
    )
    flipped = torch.tensor([8.0, 1.0, 1.0, 1.0])  # 0.8, 0.2, 0.6, 0.1 -> lgd
    probe = FakeProbe(imp, flipped, flip_position=2, flip_after=2)
    rule = PerturbationSelection(finetune_steps=7)
    geno = rule.genotype(space, probs, SEQ_OPS, probe=probe)
    assert geno == ["net", "noise", "lgd"]
    assert ArgmaxDiscretization().genotype(space, probs, SEQ_OPS) != geno

    kinds = [entry[0] for entry in probe.log]
    assert kinds == ["score"] * 4 + ["finetune"] + ["score"] * 4 + ["finetune"] + ["score"] * 4
    # each score masks exactly one candidate of the current position, earlier positions one-hot
    scores = [e[1] for e in probe.log if e[0] == "score"]
    for i, w in enumerate(scores):
        p, k = divmod(i, 4)
        expected = probs.clone()
        expected[0] = torch.nn.functional.one_hot(torch.tensor(1), 4).float() if p > 0 else expected[0]
        if p > 1:
            expected[1] = torch.nn.functional.one_hot(torch.tensor(3), 4).float()
        expected[p, k] = 0.0
        assert torch.equal(w, expected)
    finetunes = [e for e in probe.log if e[0] == "finetune"]
    assert all(steps == 7 for _, _, steps in finetunes)
    assert torch.equal(finetunes[0][1][0], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert torch.equal(finetunes[0][1][1:], probs[1:])

    # without fine-tuning the importance never flips and position 2 keeps 'roll'
    probe = FakeProbe(imp, flipped, flip_position=2, flip_after=2)
    assert PerturbationSelection(finetune_steps=0).genotype(space, probs, SEQ_OPS, probe=probe) == [
        "net",
        "noise",
        "roll",
    ]
    assert all(entry[0] == "score" for entry in probe.log)


def test_perturbation_selection_random_order_and_nonsequential_output():
    space = NonSequentialSpace(n_cells=1, n_states=3)
    probs = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), -1)
    imp = torch.rand(6, 3, generator=torch.Generator().manual_seed(1))
    probe = FakeProbe(imp, imp[0], flip_position=0, flip_after=10**6)
    rule = PerturbationSelection(finetune_steps=1, order="random", seed=3)
    geno = rule.genotype(space, probs, NS_OPS, probe=probe)
    expected = [NS_OPS[int(k)] for k in (imp * probs).argmax(-1)]
    assert geno == [expected]
    # the position being masked is the one row with exactly one zero (fixed rows are one-hot)
    masked_rows = [[p for p in range(6) if int((e[1][p] == 0).sum()) == 1] for e in probe.log if e[0] == "score"]
    assert all(len(rows) == 1 for rows in masked_rows)
    visited = list(dict.fromkeys(rows[0] for rows in masked_rows))
    assert visited == [int(i) for i in torch.randperm(6, generator=torch.Generator().manual_seed(3))]
    with pytest.raises(ValueError, match="probe"):
        rule.genotype(space, probs, NS_OPS)


class FakeTrialProbe:
    """K ``FakeProbe``s as one probe of K trials: each trial scored and fine-tuned on its own rows."""

    def __init__(self, probes):
        self.probes = probes

    def scores(self, weights):
        return [probe.score(w) for probe, w in zip(self.probes, weights)]

    def finetune(self, weights, steps):
        for probe, w in zip(self.probes, weights):
            probe.finetune(w, steps)


def _fake_probes(shape, seed):
    imp = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    flipped = torch.rand(shape[1], generator=torch.Generator().manual_seed(seed + 100))
    return lambda: FakeProbe(imp, flipped, flip_position=shape[0] - 1, flip_after=2)


@pytest.mark.parametrize("space_kind", ["sequential", "cells"])
def test_perturbation_selection_of_k_trials_is_each_trial_alone(space_kind):
    """The K-trial rule (one score call per masked candidate for all trials, one fine-tuning of all)
    decides every trial as the rule alone decides it, from the same probe answers; on the cell
    space the edges of each node too."""
    from harness.spaces.cells import DartsCellSpace
    from harness.spaces.darts_cell import OP_NAMES

    space, ops = (SequentialSpace(n_layers=4), SEQ_OPS) if space_kind == "sequential" else (
        DartsCellSpace(n_cells=3, channels=2), tuple(OP_NAMES))
    shape = (space.n_positions, len(ops))
    probs = [torch.softmax(torch.randn(*shape, generator=torch.Generator().manual_seed(s)), -1) for s in (0, 1, 2)]
    makers = [_fake_probes(shape, seed) for seed in (10, 20, 30)]
    rule = PerturbationSelection(finetune_steps=2)
    trial_probe = FakeTrialProbe([make() for make in makers])
    together = rule.trial_genotypes(space, probs, ops, trial_probe)
    for t, (p, make) in enumerate(zip(probs, makers)):
        probe = make()
        assert together[t] == rule.genotype(space, p, ops, probe=probe), t
        mine = trial_probe.probes[t].log
        assert [e[0] for e in mine] == [e[0] for e in probe.log]
        assert all(torch.equal(a[1], b[1]) for a, b in zip(mine, probe.log))
    assert together[0] != together[1]  # the trials decided differently
