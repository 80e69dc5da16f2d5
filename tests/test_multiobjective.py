import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from harness.methods.multiobjective import MGDA, WeightedSum


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _slsqp_min_norm(grads):
    g = np.stack([x.reshape(-1).numpy() for x in grads])
    m = g @ g.T
    n = len(grads)
    res = minimize(
        lambda w: w @ m @ w,
        np.full(n, 1.0 / n),
        jac=lambda w: 2 * m @ w,
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(n)}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert res.success
    return res.x


def test_weighted_sum_default_equal_and_custom():
    grads = [_randn(3, 4, seed=s) for s in range(5)]
    combined, gammas = WeightedSum().combine(grads)
    assert gammas == [0.2] * 5  # E2RNAS ablation Gamma = (0.2, ..., 0.2)
    torch.testing.assert_close(combined, sum(grads) / 5)
    combined, gammas = WeightedSum([1.0, 0.0, 2.0, 0.0, 0.0]).combine(grads)
    torch.testing.assert_close(combined, grads[0] + 2 * grads[2])
    with pytest.raises(ValueError):
        WeightedSum([1.0, 2.0]).combine(grads)


@pytest.mark.parametrize("seed", range(6))
def test_two_gradients_closed_form(seed):
    g1, g2 = _randn(7, seed=seed), _randn(7, seed=100 + seed)
    if seed % 3 == 0:  # a case where one gradient lies "beyond" the other: gamma clips to a vertex
        g2 = 0.3 * g1 + 0.01 * g2
    gamma = float(torch.clamp(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)), 0.0, 1.0))
    combined, gammas = MGDA().combine([g1, g2])
    assert gammas[0] == pytest.approx(gamma, abs=1e-9)
    assert gammas[1] == pytest.approx(1.0 - gamma, abs=1e-9)
    torch.testing.assert_close(combined, gamma * g1 + (1 - gamma) * g2)


@pytest.mark.parametrize("n,dim,seed", [(3, 10, 0), (4, 10, 1), (5, 20, 2), (5, 3, 3), (4, 6, 4)])
def test_several_gradients_match_slsqp_and_kkt(n, dim, seed):
    # shifted so that the optimum is usually on a face (some gamma = 0), not only interior
    grads = [(_randn(dim, seed=seed * 10 + i) + 0.5 * i).reshape(-1, 1) for i in range(n)]
    combined, gammas = MGDA().combine(grads)
    assert combined.shape == grads[0].shape
    w = np.array(gammas)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    ref = _slsqp_min_norm(grads)
    ref_point = sum(float(r) * g for r, g in zip(ref, grads))
    # the min-norm point is unique even when gamma is not
    torch.testing.assert_close(combined, ref_point, atol=1e-6, rtol=0)
    assert float(combined.norm() ** 2) <= float(ref_point.norm() ** 2) + 1e-12
    # KKT: g_i . v >= ||v||^2 for all i, with equality on the support of gamma
    v = combined.reshape(-1)
    dots = np.array([float(g.reshape(-1) @ v) for g in grads])
    vv = float(v @ v)
    scale = max(float(g.norm() ** 2) for g in grads)
    assert np.all(dots >= vv - 1e-8 * scale)
    assert np.allclose(dots[w > 1e-6], vv, atol=1e-8 * scale)


def test_interior_solution_when_origin_in_hull():
    # three gradients whose hull contains 0: the min-norm point is 0, a Pareto-stationary point
    grads = [torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0]), torch.tensor([-1.0, -1.0])]
    combined, gammas = MGDA().combine(grads)
    torch.testing.assert_close(combined, torch.zeros(2), atol=1e-6, rtol=0)
    np.testing.assert_allclose(gammas, [0.5, 0.25, 0.25], atol=1e-6)


def test_identical_gradients():
    g = _randn(2, 3, seed=7)
    combined, gammas = MGDA().combine([g, g.clone(), g.clone()])
    torch.testing.assert_close(combined, g)
    assert sum(gammas) == pytest.approx(1.0) and min(gammas) >= 0


def test_zero_gradient_gives_zero():
    grads = [_randn(5, seed=1), torch.zeros(5, dtype=torch.float64), _randn(5, seed=2)]
    combined, gammas = MGDA().combine(grads)
    torch.testing.assert_close(combined, torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    assert gammas[1] == pytest.approx(1.0)


def test_single_gradient_and_dtype_preserved():
    g = _randn(4, seed=3).float()
    combined, gammas = MGDA().combine([g])
    assert gammas == [1.0] and combined.dtype == torch.float32
    torch.testing.assert_close(combined, g)
