"""Defining properties of the relaxations (harness/methods/relaxation.py)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from harness.methods.relaxation import (
    GumbelSoftmaxRelaxation,
    HardConcreteGates,
    SampledPathRelaxation,
    SigmoidRelaxation,
    SoftmaxRelaxation,
    edge_normalization,
    partial_channel_mix,
)
from harness.methods.state import SearchState
from harness.spaces.nonsequential import edges

ALPHA = torch.tensor([1.0, 0.2, -0.5, 0.0], dtype=torch.float64)  # softmax ~ [0.47, 0.21, 0.11, 0.17]
DRAWS = 20000


def _state(seed: int = 0, training: bool = True, **kw) -> SearchState:
    return SearchState(generator=torch.Generator().manual_seed(seed), training=training, **kw)


def _frequencies_match(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Chi-square goodness-of-fit p-value of observed counts against probabilities."""
    expected = probs.double() * counts.sum()
    return float(stats.chisquare(counts.double().numpy(), expected.numpy()).pvalue)


# ------------------------------------------------------------------ softmax / sigmoid


def test_softmax_temperature_and_default():
    alpha = torch.tensor([[0.3, -1.0, 2.0]])
    assert torch.allclose(SoftmaxRelaxation().weights(alpha), torch.exp(alpha) / torch.exp(alpha).sum())
    w = SoftmaxRelaxation(temperature=0.5).weights(alpha, _state())
    assert torch.allclose(w, torch.exp(2 * alpha) / torch.exp(2 * alpha).sum())
    assert torch.equal(SoftmaxRelaxation(0.5).probabilities(alpha), w)
    with pytest.raises(ValueError):
        SoftmaxRelaxation(temperature=0.0)


def test_sigmoid_is_independent_per_op():
    alpha = torch.tensor([[0.0, 3.0, -3.0], [0.0, 3.0, 100.0]])
    w = SigmoidRelaxation().weights(alpha, _state())
    assert torch.allclose(w, 1 / (1 + torch.exp(-alpha)))
    # no competition: raising one op's alpha leaves the others' weights unchanged
    assert torch.equal(w[0, :2], w[1, :2])
    assert torch.equal(SigmoidRelaxation().probabilities(alpha), w)


# ------------------------------------------------------------------ Gumbel-softmax


def test_gumbel_hard_samples_are_one_hot_with_softmax_frequencies():
    relax = GumbelSoftmaxRelaxation(tau_start=3.0, tau_end=3.0, hard=True)
    w = relax.weights(ALPHA.expand(DRAWS, -1), _state(1))
    assert set(w.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(w.sum(-1) == 1)
    assert _frequencies_match(w.sum(0), torch.softmax(ALPHA, -1)) > 1e-3
    # and the test can fail: the frequencies are not uniform
    assert _frequencies_match(w.sum(0), torch.full((4,), 0.25)) < 1e-6


def test_gumbel_soft_samples_approach_one_hot_as_tau_to_zero():
    alpha = ALPHA.expand(200, -1)
    hard = GumbelSoftmaxRelaxation(1.0, 1.0, hard=True).weights(alpha, _state(2))
    gaps = []
    for tau in (2.0, 0.3, 0.03, 0.001):
        soft = GumbelSoftmaxRelaxation(tau, tau, hard=False).weights(alpha, _state(2))
        assert torch.allclose(soft.sum(-1), torch.ones(200, dtype=soft.dtype))
        gaps.append(float((soft - hard).abs().max(-1).values.mean()))
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] and gaps[3] < 1e-3  # same noise -> tends to the hard sample


def test_gumbel_straight_through_gradient_equals_soft_gradient():
    alpha = torch.randn(5, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    c = torch.randn(5, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grads, values = [], []
    for hard in (True, False):
        a = alpha.clone().requires_grad_(True)
        w = GumbelSoftmaxRelaxation(0.7, 0.7, hard=hard).weights(a, _state(5))
        (w * c).sum().backward()
        grads.append(a.grad)
        values.append(w.detach())
    assert torch.allclose(grads[0], grads[1])
    assert torch.equal(values[0], torch.nn.functional.one_hot(values[1].argmax(-1), 4).double())


def test_gumbel_temperature_schedules_and_eval():
    st = _state(epochs=10, steps_per_epoch=1)
    lin, exp = GumbelSoftmaxRelaxation.gdas(), GumbelSoftmaxRelaxation(1.0, 0.01, anneal="exponential")
    assert lin.hard and lin.temperature(st) == 10.0
    st.epoch = 5  # progress 0.5
    assert lin.temperature(st) == pytest.approx(10 - 9.9 * 0.5)
    assert exp.temperature(st) == pytest.approx(0.1)
    fb = GumbelSoftmaxRelaxation.fbnet()
    assert fb.temperature(_state()) == 5.0 and fb.tau_end == pytest.approx(5 * math.exp(-4.05))
    assert not GumbelSoftmaxRelaxation.snas().hard
    # evaluation: deterministic softmax, no draw from the generator
    for training, state in ((False, _state(training=False)), (None, None)):
        w = lin.weights(ALPHA, state)
        assert torch.equal(w, torch.softmax(ALPHA, -1)), training
    st_eval = _state(7, training=False)
    lin.weights(ALPHA, st_eval)
    assert torch.equal(st_eval.generator.get_state(), torch.Generator().manual_seed(7).get_state())


# ------------------------------------------------------------------ hard concrete


def test_hard_concrete_gates_range_atoms_and_open_probability():
    gates = HardConcreteGates()
    alpha = torch.tensor([-1.0, 0.0, 0.7], dtype=torch.float64)
    g = gates.weights(alpha.expand(DRAWS, -1), _state(8))
    assert torch.all((g >= 0) & (g <= 1))
    assert torch.all((g == 0).double().mean(0) > 0.01) and torch.all((g == 1).double().mean(0) > 0.01)
    # empirical P(g > 0) vs the closed form, and the same for P(g = 1) derived independently:
    # g = 1 iff logistic noise L >= tau * logit((1 - a)/(b - a)) - alpha
    p_open = gates.open_probability(alpha)
    p_one = torch.sigmoid(alpha - gates.tau * math.log((1 - gates.a) / (gates.b - 1)))
    se = torch.sqrt(p_open * (1 - p_open) / DRAWS)
    assert torch.all(((g > 0).double().mean(0) - p_open).abs() < 5 * se)
    assert torch.all(((g == 1).double().mean(0) - p_one).abs() < 5 * torch.sqrt(p_one * (1 - p_one) / DRAWS))
    # the closed form is non-trivial: it differs from sigmoid(alpha)
    assert torch.all((p_open - torch.sigmoid(alpha)).abs() > 0.04)
    # gradient reaches alpha through the unclipped gates
    a = alpha.clone().requires_grad_(True)
    gates.weights(a.expand(50, -1), _state(9)).sum().backward()
    assert torch.all(a.grad > 0)


def test_hard_concrete_eval_is_deterministic_gate():
    gates = HardConcreteGates(a=-0.1, b=1.1)
    alpha = torch.tensor([-5.0, 0.0, 5.0])
    w = gates.weights(alpha, None)
    expected = torch.clamp(-0.1 + 1.2 * torch.sigmoid(alpha), 0, 1)
    assert torch.equal(w, expected) and w[0] == 0 and w[2] == 1
    assert torch.equal(gates.weights(alpha, _state(training=False)), expected)
    with pytest.raises(ValueError):
        HardConcreteGates(a=0.1)


# ------------------------------------------------------------------ sampled path (ProxylessNAS)


def test_sampled_path_one_op_per_position_with_softmax_frequencies():
    relax = SampledPathRelaxation()
    a = ALPHA.expand(DRAWS, -1).clone().requires_grad_(True)
    w = relax.weights(a, _state(10))
    assert set(w.detach().unique().tolist()) <= {0.0, 1.0} and torch.all(w.detach().sum(-1) == 1)
    assert _frequencies_match(w.detach().sum(0), torch.softmax(ALPHA, -1)) > 1e-3
    # straight-through: the gradient is that of p = softmax(alpha)
    c = torch.arange(4, dtype=torch.float64)
    (w[:3] * c).sum().backward()
    p = ALPHA.clone().requires_grad_(True)
    (torch.softmax(p, -1) * c).sum().backward()
    assert torch.allclose(a.grad[0], p.grad) and torch.all(a.grad[3:] == 0)
    assert torch.equal(relax.weights(ALPHA, None), torch.softmax(ALPHA, -1))
    argmax_eval = SampledPathRelaxation(eval_mode="argmax").weights(ALPHA, None)
    assert torch.equal(argmax_eval, torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))


def test_sampled_path_forward_uses_exactly_one_path():
    """Mixing op outputs with the weights reproduces the single sampled op's output exactly."""
    outs = torch.randn(6, 4, 7, generator=torch.Generator().manual_seed(11))  # (P, K, N)
    w = SampledPathRelaxation().weights(torch.zeros(6, 4), _state(12))
    mixed = (w.unsqueeze(-1) * outs).sum(1)
    assert torch.equal(mixed, outs[torch.arange(6), w.argmax(-1)])


# ------------------------------------------------------------------ PC-DARTS


def _ops():
    return [lambda x: 2.0 * x + 1.0, lambda x: torch.roll(x, 1, dims=-1), lambda x: x**2]


def test_partial_channel_k1_is_the_plain_mix():
    u = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(13))
    w = torch.softmax(torch.tensor([0.5, -0.2, 1.0]), -1)
    out = partial_channel_mix(u, _ops(), w, 1, torch.Generator().manual_seed(0))
    assert torch.allclose(out, sum(wi * f(u) for wi, f in zip(w, _ops())))


def test_partial_channel_unselected_untouched_and_seeded():
    u = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(14))
    w = torch.tensor([0.2, 0.3, 0.5])
    ops = [lambda x: torch.full_like(x, 1000.0)] * 3  # marks processed channels
    chosen = []
    for seed in range(6):
        out = partial_channel_mix(u, ops, w, 4, torch.Generator().manual_seed(seed))
        changed = (out != u).all(-1).all(0)
        same = (out == u).all(-1).all(0)
        assert int(changed.sum()) == 2 and torch.all(changed ^ same)
        assert torch.allclose(out[:, changed], torch.full((2, 2, 5), 1000.0))
        again = partial_channel_mix(u, ops, w, 4, torch.Generator().manual_seed(seed))
        assert torch.equal(out, again)
        chosen.append(tuple(changed.nonzero().flatten().tolist()))
    assert len(set(chosen)) > 1  # the subset is random, not always the first channels
    # channel order is preserved: a per-channel op sees its own channel in place
    out = partial_channel_mix(u, [lambda x: 3 * x], torch.ones(1), 2, torch.Generator().manual_seed(1))
    changed = (out != u).all(-1).all(0)
    assert torch.allclose(out[:, changed], 3 * u[:, changed])
    with pytest.raises(ValueError):
        partial_channel_mix(u, ops, w, 3, None)


def test_edge_normalization_sums_to_one_per_node_and_shift_invariant():
    edge_list = edges(4)  # 10 edges, targets 1..4
    beta = torch.randn(2, len(edge_list), generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    out = edge_normalization(beta, edge_list)
    targets = torch.tensor([t for _, t in edge_list])
    for t in range(1, 5):
        sel = targets == t
        assert torch.allclose(out[:, sel].sum(-1), torch.ones(2, dtype=torch.float64))
        expected = torch.exp(beta[:, sel]) / torch.exp(beta[:, sel]).sum(-1, keepdim=True)
        assert torch.allclose(out[:, sel], expected)
    shifted = beta + 5.0 * (targets == 3)  # a constant added to node 3's betas
    assert torch.allclose(edge_normalization(shifted, edge_list), out)
    not_constant = beta + (targets == 2) * torch.arange(10)
    assert not torch.allclose(edge_normalization(not_constant, edge_list), out)
    # flat layout, cell by cell, like alpha's positions
    assert torch.allclose(edge_normalization(beta.reshape(-1), edge_list), out.reshape(-1))
    assert out[0, 0] == 1.0  # node 1 has a single incoming edge
