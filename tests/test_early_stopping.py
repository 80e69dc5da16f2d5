import pytest
import torch

from harness.methods.early_stopping import (
    DistanceStabilityStopping,
    HessianEigenvalueStopping,
    ParameterFreeCountStopping,
    RankStabilityStopping,
)
from harness.methods.state import SearchState
from harness.spaces.nonsequential import NonSequentialSpace
from harness.spaces.sequential import SequentialSpace

SEQ_OPS = ("lgd", "net", "roll", "noise")
NONSEQ_OPS = ("lgd", "net", "roll", "noise", "zero")


def _state(space, ops, free=True):
    pf = torch.tensor([op in ("roll", "noise", "zero") for op in ops]) if free else None
    return SearchState(ops=ops, parameter_free=pf, space=space, generator=torch.Generator().manual_seed(0))


def _run(rule, alphas, state, probe):
    """Observe epochs in order; the epoch at which the rule first says stop (None if never)."""
    rule.reset()
    for epoch, alpha in enumerate(alphas):
        if isinstance(probe, CurvatureProbe):
            probe.epoch = epoch
        if rule.observe(epoch, alpha, state, probe):
            return epoch
    return None


class CurvatureProbe:
    """val_loss(a) = c_epoch ||a||^2 / 2: the Hessian is c_epoch * I, so lambda_max = c_epoch exactly."""

    def __init__(self, script):
        self.script, self.epoch = script, 0

    def val_loss(self, a):
        return 0.5 * self.script[self.epoch] * (a**2).sum()


class ArgmaxProbe:
    def __init__(self, space, ops):
        self.space, self.ops = space, ops

    def genotype(self, alpha):
        return self.space.discretize(alpha, self.ops)


def _alphas(n, p=2, k=3):
    return [torch.full((p, k), float(e), dtype=torch.float64) for e in range(n)]


@pytest.mark.parametrize("method", ["dense", "power"])
def test_hessian_stopping_hand_computed(method):
    # window 2, k 2, threshold 0.5: lambda_bar = 1, 1, 1, 1.5 (epoch 4), 3 (epoch 5).
    # epoch 4: lambda_bar(2) / lambda_bar(4) = 1/1.5 = 0.67 (no); epoch 5: 1/3 < 0.5 -> stop, roll back to epoch 3.
    script = [1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    rule = HessianEigenvalueStopping(window=2, k=2, threshold=0.5, min_epochs=0, method=method)
    state, probe = _state(SequentialSpace(2), SEQ_OPS[:3]), CurvatureProbe(script)
    alphas = _alphas(len(script))
    assert _run(rule, alphas, state, probe) == 5
    assert rule.signal == pytest.approx(script[:6], rel=1e-6)
    assert rule.stop_epoch == 3
    torch.testing.assert_close(rule.rollback_alpha, alphas[3])
    rule.reset()
    assert rule.signal == [] and rule.rollback_alpha is None


def test_hessian_stopping_defaults():
    # defaults window = k = 5, threshold 0.75: lambda = 1 up to epoch 11, then 1.5, 2, 2.5, ...
    # lambda_bar(12) = 1.1, lambda_bar(13) = 1.3 (ratio 0.77), lambda_bar(14) = 1.6 (ratio 0.625) -> stop at 14
    script = [1.0] * 12 + [1.5 + 0.5 * i for i in range(10)]
    rule = HessianEigenvalueStopping()
    state, probe = _state(SequentialSpace(2), SEQ_OPS[:3]), CurvatureProbe(script)
    alphas = _alphas(len(script))
    assert _run(rule, alphas, state, probe) == 14
    assert rule.stop_epoch == 9
    torch.testing.assert_close(rule.rollback_alpha, alphas[9])


def test_hessian_stopping_min_epochs_and_negative_curvature():
    script = [1.0] * 5 + [10.0] * 10
    state = _state(SequentialSpace(2), SEQ_OPS[:3])
    # without min_epochs the first comparable pair (epochs 4 and 9, 1 / 10) stops at epoch 9
    rule = HessianEigenvalueStopping(min_epochs=0)
    assert _run(rule, _alphas(15), state, CurvatureProbe(script)) == 9 and rule.stop_epoch == 4
    rule = HessianEigenvalueStopping(min_epochs=10)
    assert _run(rule, _alphas(15), state, CurvatureProbe(script)) == 10 and rule.stop_epoch == 5
    # a curvature that only grows in magnitude while negative (lambda_max < 0) never triggers
    rule = HessianEigenvalueStopping(min_epochs=0)
    assert _run(rule, _alphas(15), state, CurvatureProbe([-x for x in script])) is None
    assert len(rule.signal) == 15 and rule.rollback_alpha is None


def _one_hot_alpha(choices, k):
    alpha = torch.zeros(len(choices), k)
    alpha[torch.arange(len(choices)), torch.tensor(choices)] = 1.0
    return alpha


def test_parameter_free_count_sequential():
    space = SequentialSpace(4)
    state, probe = _state(space, SEQ_OPS), ArgmaxProbe(space, SEQ_OPS)
    # counts of roll/noise: 0, 1, 1, 2, 2
    script = [[0, 0, 0, 0], [2, 0, 0, 0], [2, 1, 1, 0], [2, 3, 0, 1], [3, 3, 0, 1]]
    alphas = [_one_hot_alpha(c, 4) for c in script]
    rule = ParameterFreeCountStopping(threshold=2)
    assert _run(rule, alphas, state, probe) == 3
    assert rule.signal == [0.0, 1.0, 1.0, 2.0]
    assert _run(ParameterFreeCountStopping(threshold=2, min_epoch=4), alphas, state, probe) == 4
    assert _run(ParameterFreeCountStopping(threshold=3), alphas, state, probe) is None
    # parameter_free missing from the state: the op registry's flags give the same answer
    assert _run(ParameterFreeCountStopping(threshold=2), alphas, _state(space, SEQ_OPS, free=False), probe) == 3


def test_parameter_free_count_nonsequential_counts_zero():
    space = NonSequentialSpace(n_cells=2, n_states=2)  # 3 edges per cell
    state, probe = _state(space, NONSEQ_OPS), ArgmaxProbe(space, NONSEQ_OPS)
    script = [[0, 1, 0, 1, 0, 1], [4, 1, 0, 1, 0, 1], [4, 1, 0, 1, 0, 4], [4, 1, 0, 1, 2, 4]]
    alphas = [_one_hot_alpha(c, 5) for c in script]
    rule = ParameterFreeCountStopping(threshold=3)
    assert _run(rule, alphas, state, probe) == 3
    assert rule.signal == [0.0, 1.0, 2.0, 3.0]


def test_rank_stability():
    state = _state(SequentialSpace(3), SEQ_OPS)
    gen = torch.Generator().manual_seed(0)
    # columns: lgd, net, roll, noise; only (lgd, net) are ranked
    learnable = [
        [[2.0, 1.0], [1.0, 2.0], [0.0, 1.0]],  # epoch 0
        [[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]],  # epoch 1: position 0 flips
        [[2.0, 1.0], [1.0, 2.0], [0.0, 1.0]],  # epoch 2: flips back
        [[2.0, 1.0], [2.0, 1.0], [0.0, 1.0]],  # epoch 3: position 1 flips; final ranking from here
        [[3.0, 1.0], [2.5, 0.0], [0.0, 1.5]],  # epochs 4-7: values move, ranking does not
        [[3.0, 2.0], [2.5, 1.0], [-1.0, 1.5]],
        [[4.0, 2.0], [2.5, 1.0], [-1.0, 2.5]],
        [[4.0, 3.0], [3.5, 1.0], [-1.0, 3.5]],
    ]
    alphas = []
    for rows in learnable:
        free = 10.0 * torch.randn(3, 2, generator=gen)  # parameter-free ops move wildly: must be ignored
        alphas.append(torch.cat([torch.tensor(rows), free], dim=1))
    rule = RankStabilityStopping(window=3)
    assert _run(rule, alphas, state, None) == 6
    assert rule.signal == [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    assert _run(RankStabilityStopping(window=4), alphas, state, None) == 7
    assert _run(RankStabilityStopping(window=5), alphas, state, None) is None
    # with the parameter-free ops ranked too (no flags, all learnable) the random columns break stability
    state_all = SearchState(ops=SEQ_OPS, parameter_free=torch.zeros(4, dtype=torch.bool), space=state.space)
    assert _run(RankStabilityStopping(window=3), alphas, state_all, None) is None


class ScriptedProbe:
    """genotype(alpha) = script[int(alpha[0, 0])]: alpha carries the epoch."""

    def __init__(self, script):
        self.script = script

    def genotype(self, alpha):
        return self.script[int(alpha[0, 0])]


def test_distance_stability():
    a, b, c = ["lgd", "lgd", "lgd"], ["net", "lgd", "lgd"], ["net", "net", "roll"]
    script = [a, b, b, b, c, c, c, c]
    state, probe = _state(SequentialSpace(3), SEQ_OPS), ScriptedProbe(script)
    alphas = _alphas(len(script), k=4)
    rule = DistanceStabilityStopping(patience=2, start_epoch=3)
    # stable epochs: 2 (before start), 3, 5, 6 -> streak reaches 2 at epoch 6
    assert _run(rule, alphas, state, probe) == 6
    one = (2 / 4) / 3  # one layer differs: 2 of 4 one-hot entries, averaged over 3 layers
    assert rule.signal == pytest.approx([0.0, one, 0.0, 0.0, 2 * one, 0.0, 0.0])
    assert rule.rollback_alpha is None
    assert _run(DistanceStabilityStopping(patience=2, start_epoch=0), alphas, state, probe) == 3
    assert _run(DistanceStabilityStopping(patience=4, start_epoch=0), alphas, state, probe) is None
    # a tolerance above a one-layer change treats epoch 1 as stable too
    assert _run(DistanceStabilityStopping(patience=3, start_epoch=0, tolerance=0.2), alphas, state, probe) == 3


def test_distance_stability_initial_reference():
    a, b1, b2 = ["lgd", "lgd", "lgd"], ["net", "lgd", "lgd"], ["lgd", "net", "lgd"]
    script = [a, b1, b2, b1, b2, b1]  # the genotype keeps changing but stays one layer away from a
    state, probe = _state(SequentialSpace(3), SEQ_OPS), ScriptedProbe(script)
    alphas = _alphas(len(script), k=4)
    assert _run(DistanceStabilityStopping(patience=3, start_epoch=0), alphas, state, probe) is None
    rule = DistanceStabilityStopping(patience=3, start_epoch=0, reference="initial")
    assert _run(rule, alphas, state, probe) == 4  # stable at epochs 2, 3, 4
    assert rule.signal == pytest.approx([0.0] + [(2 / 4) / 3] * 4)
