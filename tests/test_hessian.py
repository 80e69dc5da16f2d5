import numpy as np
import pytest
import torch

from harness.methods.hessian import (
    alpha_hessian,
    dominant_eigenvalue,
    dominant_eigenvalues,
    hessian_vector_product,
    trial_difference_hvp,
    trial_hessians,
)


def _tiny_supernet(seed=0, positions=3, ops=3, width=4):
    """loss(alpha): a 3-layer MLP whose every layer mixes ``ops`` tanh maps by softmax(alpha)."""
    g = torch.Generator().manual_seed(seed)
    mats = torch.randn(positions, ops, width, width, generator=g, dtype=torch.float64) / width**0.5
    x = torch.randn(8, width, generator=g, dtype=torch.float64)
    target = torch.randn(8, width, generator=g, dtype=torch.float64)
    alpha = torch.randn(positions, ops, generator=g, dtype=torch.float64)

    def loss(a):
        u = x
        for p in range(positions):
            w = torch.softmax(a[p], dim=-1)
            u = sum(w[k] * torch.tanh(u @ mats[p, k]) for k in range(ops)) + u
        return ((u - target) ** 2).mean()

    return loss, alpha


def _fd_hessian(loss, alpha, eps=1e-5):
    """Central finite differences of the autograd gradient, column by column."""

    def grad(a):
        a = a.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(a), [a])
        return g.reshape(-1)

    n = alpha.numel()
    cols = []
    for j in range(n):
        e = torch.zeros(n, dtype=alpha.dtype)
        e[j] = eps
        cols.append((grad(alpha + e.reshape(alpha.shape)) - grad(alpha - e.reshape(alpha.shape))) / (2 * eps))
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_hessian_matches_autograd_and_finite_differences(seed):
    loss, alpha = _tiny_supernet(seed)
    before = alpha.clone()
    h = alpha_hessian(loss, alpha)
    n = alpha.numel()
    assert h.shape == (n, n)
    ref = torch.autograd.functional.hessian(loss, alpha).reshape(n, n)
    torch.testing.assert_close(h, ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(h, _fd_hessian(loss, alpha), atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(alpha, before, atol=0, rtol=0)
    assert alpha.grad is None


def test_hvp_matches_dense():
    loss, alpha = _tiny_supernet(2)
    h = alpha_hessian(loss, alpha)
    v = torch.randn(alpha.numel(), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(hessian_vector_product(loss, alpha)(v), h @ v, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_dominant_eigenvalue_dense_and_power(seed):
    loss, alpha = _tiny_supernet(seed)
    h = torch.autograd.functional.hessian(loss, alpha).reshape(alpha.numel(), -1).numpy()
    eig = np.linalg.eigvalsh(0.5 * (h + h.T))
    dense = dominant_eigenvalue(loss, alpha, method="dense")
    assert dense == pytest.approx(eig[-1], rel=1e-10, abs=1e-12)
    assert dominant_eigenvalue(loss, alpha, method="dense", which="magnitude") == pytest.approx(
        eig[np.abs(eig).argmax()], rel=1e-10
    )
    power = dominant_eigenvalue(
        loss, alpha, method="power", iterations=500, tol=1e-10, generator=torch.Generator().manual_seed(0)
    )
    assert power == pytest.approx(eig[-1], rel=1e-4)


def _quadratic(eigenvalues, seed=0):
    """loss(a) = a^T Q a / 2 with Q = R diag(eigenvalues) R^T: Hessian Q, known spectrum."""
    n = len(eigenvalues)
    r, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = r @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ r.T
    alpha = torch.zeros(2, n // 2, dtype=torch.float64)
    return (lambda a: 0.5 * a.reshape(-1) @ q @ a.reshape(-1)), alpha


def test_largest_vs_magnitude_with_negative_curvature():
    loss, alpha = _quadratic([-5.0, 3.0, 1.0, 0.5, -0.2, 0.1])
    gen = torch.Generator().manual_seed(1)
    assert dominant_eigenvalue(loss, alpha, method="dense") == pytest.approx(3.0)
    assert dominant_eigenvalue(loss, alpha, method="dense", which="magnitude") == pytest.approx(-5.0)
    assert dominant_eigenvalue(loss, alpha, method="power", generator=gen, iterations=500, tol=1e-12) == (
        pytest.approx(3.0, rel=1e-6)
    )
    assert dominant_eigenvalue(
        loss, alpha, method="power", which="magnitude", generator=gen, iterations=500, tol=1e-12
    ) == pytest.approx(-5.0, rel=1e-6)


def test_power_is_deterministic_and_leaves_global_rng_alone():
    loss, alpha = _tiny_supernet(0)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = dominant_eigenvalue(loss, alpha, method="power")
    b = dominant_eigenvalue(loss, alpha, method="power")
    assert a == b
    torch.testing.assert_close(torch.rand(1), expected_next)


def test_linear_loss_has_zero_hessian():
    alpha = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    h = alpha_hessian(lambda a: (c * a).sum(), alpha)
    torch.testing.assert_close(h, torch.zeros(6, 6, dtype=torch.float64))
    assert dominant_eigenvalue(lambda a: (c * a).sum(), alpha, method="power") == 0.0


def test_row_by_row_fallback_matches(monkeypatch):
    loss, alpha = _tiny_supernet(4)
    batched = alpha_hessian(loss, alpha)
    grad = torch.autograd.grad

    def no_vmap(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("no batching rule")
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_vmap)
    torch.testing.assert_close(alpha_hessian(loss, alpha), batched, atol=1e-12, rtol=1e-10)


def test_auto_method_switches_on_size():
    loss, alpha = _quadratic([4.0, 3.9, 1.0, 0.5, -0.2, 0.1])
    # dense (6 entries <= dense_max) is exact; with dense_max=2 power iteration (stopped after 2
    # products, far from converged given the 4.0 / 3.9 gap) is used instead
    assert dominant_eigenvalue(loss, alpha, method="auto") == pytest.approx(4.0, rel=1e-12)
    rough = dominant_eigenvalue(loss, alpha, method="auto", dense_max=2, iterations=2)
    assert rough == dominant_eigenvalue(loss, alpha, method="power", iterations=2)
    assert rough != pytest.approx(4.0, rel=1e-6)


def _trials(seeds):
    """K tiny supernets of different seeds as one loss of a stacked alpha (K, positions, ops), as the
    search's probe sums its trials' losses."""
    losses, alphas = zip(*(_tiny_supernet(s) for s in seeds))
    return (lambda a: sum(f(a[t]) for t, f in enumerate(losses))), torch.stack(alphas), losses


def test_trial_hessians_are_each_trials_own():
    """Central differences of exact gradients (h = 1e-2) against every trial's exact Hessian: the
    O(h^2) truncation stays far inside the 1e-2 the engine documents."""
    loss, alpha, losses = _trials([0, 1, 3])
    h = trial_hessians(loss, alpha)
    n = alpha[0].numel()
    for t, f in enumerate(losses):
        exact = alpha_hessian(f, alpha[t])
        torch.testing.assert_close(h[t], exact, rtol=0, atol=1e-3 * exact.abs().max().item())
    assert h.shape == (3, n, n)


def test_trial_difference_hvp_is_each_trials_product():
    loss, alpha, losses = _trials([2, 5])
    v = torch.randn(2, alpha[0].numel(), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    got = trial_difference_hvp(loss, alpha)(v)
    for t, f in enumerate(losses):
        exact = hessian_vector_product(f, alpha[t])(v[t])
        torch.testing.assert_close(got[t], exact, rtol=0, atol=1e-3 * exact.abs().max().item())


@pytest.mark.parametrize("products, rel", [("difference", 1e-3), ("exact", 1e-8)])
def test_trial_power_iteration_matches_each_trial_alone(products, rel):
    """K trials' power iteration (each trial from its own start vector and stopping on its own) and
    dense Hessians against each trial's exact largest eigenvalue."""
    loss, alpha, losses = _trials([0, 1, 3])
    gens = [torch.Generator().manual_seed(10 + t) for t in range(3)]
    got = dominant_eigenvalues(loss, alpha, method="power", iterations=2000, tol=1e-14, generator=gens,
                               products=products)
    alone = [dominant_eigenvalue(f, alpha[t], method="dense") for t, f in enumerate(losses)]
    assert got == pytest.approx(alone, rel=rel)
    assert dominant_eigenvalues(loss, alpha, method="dense", products=products) == pytest.approx(alone, rel=rel)


def test_unknown_products_are_refused():
    loss, alpha, _ = _trials([0])
    with pytest.raises(ValueError, match="products must be one of"):
        dominant_eigenvalues(loss, alpha, products="forward")


def test_trial_power_iteration_with_negative_curvature():
    """A trial whose largest-|lambda| eigenvalue is negative gets lambda_max from the shifted run."""
    quad_a, alpha_a = _quadratic([-5.0, 3.0, 1.0, 0.5, -0.2, 0.1])
    quad_b, _ = _quadratic([4.0, 1.0, 0.5, 0.3, 0.2, 0.1], seed=1)
    alpha = torch.stack([alpha_a, alpha_a])
    got = dominant_eigenvalues(lambda a: quad_a(a[0]) + quad_b(a[1]), alpha, method="power", iterations=2000,
                               tol=1e-12, generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
    assert got == pytest.approx([3.0, 4.0], rel=1e-5)
