import math

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp, softmax

from harness.methods.regularizers import (
    BetaDecay,
    CostBound,
    L1ParameterFree,
    NoveltyTerm,
    PathRegularizer,
    ZeroOneLoss,
    path_positions,
)
from harness.methods.state import SearchState
from harness.spaces import NonSequentialSpace, SequentialSpace
from harness.spaces.costs import op_costs

OPS = ("lgd", "net", "roll", "noise")
PF = np.array([False, False, True, True])


def _state(**kw) -> SearchState:
    kw.setdefault("ops", OPS)
    kw.setdefault("parameter_free", torch.tensor(PF))
    return SearchState(**kw)


def _alpha(p=5, k=4, seed=0, scale=1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(p, k, generator=g, dtype=torch.float64)).requires_grad_(True)


def _value(reg, args) -> float:
    return float(reg.penalty(*args).detach())


def _grad(reg, alpha, state):
    (g,) = torch.autograd.grad(reg.penalty(alpha, state), [alpha])
    return g


def _gradcheck(reg, alpha, state):
    assert torch.autograd.gradcheck(lambda a: reg.penalty(a, state), (alpha,))


def test_zero_one_loss():
    reg, state = ZeroOneLoss(), _state()
    alpha = _alpha()
    a = alpha.detach().numpy()
    assert math.isclose(_value(reg, (alpha, state)), -10 * np.mean((expit(a) - 0.5) ** 2), rel_tol=1e-12)
    _gradcheck(reg, alpha, state)
    # maximal (0, zero gradient) at sigmoid 0.5, minimal (-w/4) at sigmoid 0 or 1
    zero = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    assert _value(reg, (zero, state)) == 0.0 and torch.all(_grad(reg, zero, state) == 0)
    ends = torch.tensor([[40.0, -40.0]], dtype=torch.float64)
    assert math.isclose(_value(reg, (ends, state)), -2.5, rel_tol=1e-12)
    # descent pushes each sigmoid away from 0.5
    g = _grad(reg, alpha, state)
    assert torch.all(torch.sign(-g) == torch.sign(alpha.detach()))


@pytest.mark.parametrize("ramp,progress", [(False, 0.3), (True, 0.3), (True, 0.0)])
def test_beta_decay(ramp, progress):
    reg = BetaDecay(weight=0.2, ramp=ramp)
    state = _state(epoch=round(progress * 10), epochs=10)
    assert math.isclose(state.progress, progress)
    coeff = 0.2 * (progress if ramp else 1.0)
    alpha = _alpha()
    a = alpha.detach().numpy()
    assert math.isclose(_value(reg, (alpha, state)), coeff * logsumexp(a, axis=1).sum(), abs_tol=1e-12)
    # the gradient is the (scaled) softmax of each position
    assert np.allclose(_grad(reg, alpha, state).numpy(), coeff * softmax(a, axis=1), atol=1e-12)
    _gradcheck(reg, alpha, state)


def test_l1_parameter_free_ignores_parametric_ops():
    reg = L1ParameterFree(weight=0.3)
    alpha = _alpha(seed=1)
    a = alpha.detach().numpy()
    for state in (_state(), _state(parameter_free=None)):  # the mask falls back to state.ops
        assert math.isclose(_value(reg, (alpha, state)), 0.3 * np.abs(a[:, PF]).sum(), rel_tol=1e-12)
        g = _grad(reg, alpha, state).numpy()
        assert np.all(g[:, ~PF] == 0) and np.allclose(g[:, PF], 0.3 * np.sign(a[:, PF]))
    _gradcheck(reg, alpha, _state())  # alpha is away from the kink at 0
    with pytest.raises(ValueError):
        reg.penalty(alpha, SearchState(ops=("lgd",)))


def _path_reference(a, pf, path, tau, lo, hi):
    q = expit(a - tau * np.log(-lo / hi))
    p = a.shape[0]
    l_skip = q[:, pf].sum() / p
    l_other = q[:, ~pf].sum() / p / (~pf).sum()
    l_path = np.prod(q[path][:, ~pf].sum(axis=1))
    return l_skip, l_other, l_path


def test_path_regularizer_terms_and_gradient():
    reg = PathRegularizer(lambda_skip=0.3, lambda_nonskip=0.2, lambda_path=0.05, a=-0.2, b=1.3, tau=0.5)
    state = _state(space=SequentialSpace(n_layers=5))
    alpha = _alpha()
    ref = _path_reference(alpha.detach().numpy(), PF, list(range(5)), 0.5, -0.2, 1.3)
    assert np.allclose([float(t.detach()) for t in reg.terms(alpha, state)], ref, rtol=1e-12)
    expected = 0.3 * ref[0] + 0.2 * ref[1] - 0.05 * ref[2]
    assert math.isclose(_value(reg, (alpha, state)), expected, rel_tol=1e-12)
    _gradcheck(reg, alpha, state)
    # descent closes skip gates; without the group term it opens the parametric ones on the path
    g = _grad(reg, alpha, state).numpy()
    assert np.all(g[:, PF] > 0)
    g = _grad(PathRegularizer(lambda_nonskip=0.0), alpha, state).numpy()
    assert np.all(g[:, ~PF] < 0)


def test_path_regularizer_gate_probability_is_hard_concrete():
    """q = P(g > 0) for g = clip(a + (b - a) sigmoid((logit(u) + alpha) / tau), 0, 1)."""
    reg = PathRegularizer()
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(400_000, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    for alpha in (-1.0, 0.0, 0.7):
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + alpha) / reg.tau)
        gate = (reg.a + (reg.b - reg.a) * s).clamp(0, 1)
        q = float(reg.open_probability(torch.tensor(alpha)))
        assert abs(float((gate > 0).double().mean()) - q) < 3e-3


def test_path_positions():
    assert path_positions(SequentialSpace(4), 4) == [0, 1, 2, 3]
    space = NonSequentialSpace(n_cells=2, n_states=5)
    expected = [0, 2, 5, 9, 14]  # edges 0->1, 1->2, 2->3, 3->4, 4->5 in target-then-source order
    assert path_positions(space, 30) == expected + [15 + e for e in expected]
    assert all(space.edge_list[p % 15][1] == space.edge_list[p % 15][0] + 1 for p in path_positions(space, 30))
    # the non-sequential path term multiplies exactly those positions
    ops = ("lgd", "net", "roll", "noise", "zero")
    state = SearchState(ops=ops, parameter_free=torch.tensor([False, False, True, True, True]), space=space)
    alpha = _alpha(30, 5)
    reg = PathRegularizer()
    q = reg.open_probability(alpha.detach())[:, :2].sum(dim=1)
    assert torch.allclose(reg.terms(alpha, state)[2], q[path_positions(space, 30)].prod())


def test_novelty_pushes_away_from_history():
    reg = NoveltyTerm(gamma=0.2)
    assert math.isclose(reg.loss_scale, 0.8)
    alpha = _alpha(seed=2)
    empty = _state()
    assert _value(reg, (alpha, empty)) == 0.0 and torch.all(_grad(reg, alpha, empty) == 0)
    near = alpha.detach().clone()
    near[0, 0] += 0.3
    history = [_alpha(seed=s).detach() for s in (3, 4)] + [near]
    state = _state(alpha_history=[h.tolist() for h in history])  # snapshots may be lists
    dists = [np.linalg.norm(softmax(alpha.detach().numpy(), 1) - softmax(h.numpy(), 1)) for h in history]
    assert math.isclose(_value(reg, (alpha, state)), -0.2 * min(dists), rel_tol=1e-9)
    _gradcheck(reg, alpha, state)
    # a descent step increases the distance to the nearest historical architecture
    stepped = alpha.detach() - 0.5 * _grad(reg, alpha, state)
    assert _value(reg, (stepped, state)) < _value(reg, (alpha, state))
    with pytest.raises(ValueError):
        NoveltyTerm(gamma=1.0)


def test_cost_bound():
    costs = np.array([146.0, 145.0, 0.0, 0.0])
    alpha = _alpha(seed=5)
    a = alpha.detach().numpy()
    expected = (softmax(a, axis=1) * costs).sum()
    for bound in (expected - 50, expected + 50):
        reg = CostBound(costs, bound, weight=0.5)
        assert math.isclose(_value(reg, (alpha, None)), 0.5 * abs(expected - bound), rel_tol=1e-12)
        _gradcheck(reg, alpha, None)
        # descent moves the expected cost towards the bound from either side
        stepped = alpha.detach() - 1e-3 * _grad(reg, alpha, None)
        assert abs(float(reg.expected_cost(stepped)) - bound) < abs(expected - bound)
    # per-position (P, K) costs broadcast the same way
    per_pos = np.tile(costs, (5, 1)) * np.arange(1, 6)[:, None]
    reg = CostBound(per_pos, 0.0)
    assert math.isclose(_value(reg, (alpha, None)), (softmax(a, axis=1) * per_pos).sum(), rel_tol=1e-12)


def test_cost_bound_for_ops_is_normalized():
    ops = ("lgd", "net", "roll", "noise")
    params, flops = op_costs(ops, None, 50, 50)
    all_lgd = torch.full((10, 4), -60.0, dtype=torch.float64)
    all_lgd[:, 0] = 60.0
    for kind, raw in (("params", params), ("flops", flops)):
        reg = CostBound.for_ops(kind, ops, 10, 50, 50, bound_fraction=0.25)
        assert reg.bound == 0.25
        assert math.isclose(float(reg.expected_cost(all_lgd)), raw[0] / max(raw), rel_tol=1e-9)
    with pytest.raises(ValueError):
        CostBound.for_ops("latency", ops, 10, 50, 50)
