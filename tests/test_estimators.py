"""Defining properties of the architecture-gradient estimators on a tiny double-precision supernet.

Two positions mix three candidate ops (linear, tanh-linear, a frozen scaling) by softmax(alpha).
References are computed independently with torch.func (autograd through one unrolled SGD step)
or dense linear algebra (implicit-function-theorem hypergradient via torch.linalg.solve).
"""

import pytest
import torch

from harness.methods.estimators import (
    ESTIMATORS,
    FirstOrder,
    ImplicitNeumann,
    MixedLevel,
    MixedLevelSecondOrder,
    SecondOrder,
    SingleLevel,
    make_estimator,
)
from harness.methods.state import SearchState

P, K, D, N = 2, 3, 3, 8
DT = torch.float64
FD_RTOL = 1e-5  # finite-difference HVPs (radius 0.01 / ||v||) vs autograd: O(radius^2), ~7e-7 observed


def _forward(W, V, frozen, a, x):
    h = x
    for p in range(P):
        m = torch.softmax(a[p], dim=-1)
        h = m[0] * h @ W[p] + m[1] * torch.tanh(h @ V[p]) + m[2] * h * frozen
    return h


def _problem(ridge=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xt, yt, xv, yv = (torch.randn(N, D, generator=g, dtype=DT) for _ in range(4))
    W = (0.5 * torch.randn(P, D, D, generator=g, dtype=DT)).requires_grad_(True)
    V = (0.5 * torch.randn(P, D, D, generator=g, dtype=DT)).requires_grad_(True)
    unused = torch.randn(4, generator=g, dtype=DT).requires_grad_(True)  # not in either loss
    frozen = torch.tensor(0.7, dtype=DT)  # in the graph, not trainable
    alpha = torch.randn(P, K, generator=g, dtype=DT).requires_grad_(True)

    def train_fn(w, a):  # functional forms for the references
        return ((_forward(*w, frozen, a, xt) - yt) ** 2).mean() + 0.5 * ridge * sum((t**2).sum() for t in w)

    def val_fn(w, a):
        return ((_forward(*w, frozen, a, xv) - yv) ** 2).mean()

    live = (W, V)
    return dict(
        frozen_live=tuple(t.detach() for t in live),
        weights=[W, V, unused, frozen],
        live=live,
        alpha=alpha,
        train_fn=train_fn,
        val_fn=val_fn,
        train_loss=lambda a: train_fn(live, a),  # closures over the live weights, as the search builds them
        val_loss=lambda a: val_fn(live, a),
    )


def _call(est, pr, xi, state=None):
    return est.alpha_gradient(pr["alpha"], pr["weights"], pr["train_loss"], pr["val_loss"], xi, state)


def _unrolled_reference(pr, outer, xi):
    """d/da outer(w - xi grad_w L_train(w, a), a) by autograd through the step (create_graph)."""
    w0 = tuple(t.detach().clone() for t in pr["live"])

    def unrolled(a):
        g = torch.func.grad(pr["train_fn"])(w0, a)
        return outer(tuple(w - xi * gw for w, gw in zip(w0, g)), a)

    return torch.func.grad(unrolled)(pr["alpha"].detach())


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_second_order_fd_matches_autograd_through_unrolled_step():
    pr, xi = _problem(), 0.1
    exact = _unrolled_reference(pr, pr["val_fn"], xi)
    est = _call(SecondOrder(), pr, xi)
    assert _rel(est, exact) < FD_RTOL
    assert _rel(_call(FirstOrder(), pr, xi), exact) > 100 * FD_RTOL  # the unroll term is not negligible here


def test_mixed_level_second_order_equals_both_unrolled_references():
    pr, xi, chi = _problem(), 0.1, 0.3
    ref_val = _unrolled_reference(pr, pr["val_fn"], xi)
    ref_train = _unrolled_reference(pr, pr["train_fn"], xi)
    est = _call(MixedLevelSecondOrder(chi=chi), pr, xi)
    assert _rel(est, ref_val + chi * ref_train) < FD_RTOL
    assert _rel(est, ref_val) > 100 * FD_RTOL  # the train term contributes
    # the train term has its own unroll correction: first-order train gradient would differ
    first_train = torch.func.grad(pr["train_fn"], argnums=1)(pr["frozen_live"], pr["alpha"].detach())
    assert _rel(est, ref_val + chi * first_train) > 100 * FD_RTOL
    sched = _call(MixedLevelSecondOrder(chi=lambda s: 0.1 * s.epoch), pr, xi, SearchState(epoch=3))
    torch.testing.assert_close(sched, est, rtol=1e-9, atol=1e-12)


def _dense(pr):
    """Flat-weight Hessian H, mixed block M = d(grad_w L_train)/da (n_w x n_a), val gradients."""
    shapes = [t.shape for t in pr["live"]]
    sizes = [t.numel() for t in pr["live"]]
    w_flat = torch.cat([t.detach().flatten() for t in pr["live"]])
    a0 = pr["alpha"].detach()

    def unflat(v):
        return tuple(c.reshape(s) for c, s in zip(torch.split(v, sizes), shapes))

    def train_flat(v, a):
        return pr["train_fn"](unflat(v), a)

    H = torch.func.hessian(train_flat, argnums=0)(w_flat, a0)
    M = torch.func.jacrev(torch.func.grad(train_flat, argnums=0), argnums=1)(w_flat, a0).reshape(len(w_flat), -1)
    gv_w, gv_a = torch.func.grad(lambda v, a: pr["val_fn"](unflat(v), a), argnums=(0, 1))(w_flat, a0)
    return H, M, gv_w, gv_a


def test_neumann_series_is_exact_truncation_and_converges_to_ift():
    pr = _problem(ridge=0.3)  # ridge makes H positive definite; the data term still matters
    H, M, gv_w, gv_a = _dense(pr)
    eig = torch.linalg.eigvalsh(H)
    assert eig.min() > 0 and eig.max() / eig.min() < 10  # positive definite, well conditioned
    gamma = 0.9 / float(eig.max())
    ift = gv_a - (M.T @ torch.linalg.solve(H, gv_w)).reshape(P, K)
    # each K: exactly gamma * sum_{k<=K} (I - gamma H)^k applied densely
    step = torch.eye(len(H), dtype=DT) - gamma * H
    for terms in (0, 1, 3):
        series = sum(torch.linalg.matrix_power(step, k) for k in range(terms + 1))
        dense = gv_a - gamma * (M.T @ series @ gv_w).reshape(P, K)
        exact = _call(ImplicitNeumann(terms=terms, hvp="exact"), pr, gamma)
        torch.testing.assert_close(exact, dense, rtol=1e-10, atol=1e-12)
        # the default takes every product by central differences of exact gradients: the error is
        # O(radius^2) (1.2e-5 to 2e-5 at the default radius 0.01 here), 100x less per 10x less radius
        fd_errors = [_rel(_call(ImplicitNeumann(terms=terms, fd_radius=r), pr, gamma), dense) for r in (1e-2, 1e-3)]
        assert fd_errors[0] < 5e-5 and 50 < fd_errors[0] / fd_errors[1] < 200, fd_errors
    errors = [_rel(_call(ImplicitNeumann(terms=terms, hvp="exact"), pr, gamma), ift) for terms in (0, 3, 10, 40)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-9, errors
    differences = [_rel(_call(ImplicitNeumann(terms=terms), pr, gamma), ift) for terms in (0, 3, 10, 40)]
    assert all(a > b for a, b in zip(differences, differences[1:])), differences
    assert differences[-1] < 5e-5, differences
    # gamma given explicitly overrides xi
    torch.testing.assert_close(
        _call(ImplicitNeumann(terms=3, gamma=gamma), pr, 123.0), _call(ImplicitNeumann(3), pr, gamma)
    )
    with pytest.raises(ValueError, match="difference, exact"):
        ImplicitNeumann(hvp="exakt")


def test_single_and_mixed_level_first_order():
    pr = _problem()
    a0 = pr["alpha"].detach()
    g_train = torch.func.grad(pr["train_fn"], argnums=1)(pr["frozen_live"], a0)
    g_val = torch.func.grad(pr["val_fn"], argnums=1)(pr["frozen_live"], a0)
    torch.testing.assert_close(_call(SingleLevel(), pr, 0.1), g_train)
    torch.testing.assert_close(_call(FirstOrder(), pr, 0.1), g_val)
    torch.testing.assert_close(_call(MixedLevel(chi=0.25), pr, 0.1), g_val + 0.25 * g_train)
    schedule = MixedLevel(chi=lambda s: 0.1 * s.epoch)
    for epoch in (0, 4):
        got = _call(schedule, pr, 0.1, SearchState(epoch=epoch))
        torch.testing.assert_close(got, g_val + 0.1 * epoch * g_train)
    with pytest.raises(ValueError, match="state"):
        _call(schedule, pr, 0.1)


@pytest.mark.parametrize(
    "name,options",
    [
        ("first-order", {}),
        ("second-order", {}),
        ("implicit-neumann", {"terms": 2}),
        ("implicit-neumann", {"terms": 2, "hvp": "exact"}),
        ("single-level", {}),
        ("mixed-level", {"chi": 0.5}),
        ("mixed-level-2nd", {"chi": 0.5}),
    ],
)
def test_weights_and_grads_untouched(name, options):
    pr = _problem()
    W, V, unused, _ = pr["weights"]
    W.grad = torch.ones_like(W)
    before = [t.detach().clone() for t in pr["weights"]] + [pr["alpha"].detach().clone()]
    # positional call without state, exactly as the DAS loop makes it
    grad = make_estimator(name, **options).alpha_gradient(
        pr["alpha"], pr["weights"], pr["train_loss"], pr["val_loss"], 0.1
    )
    assert grad.shape == (P, K) and torch.isfinite(grad).all() and not grad.requires_grad
    after = [t.detach() for t in pr["weights"]] + [pr["alpha"].detach()]
    assert all(torch.equal(b, a) for b, a in zip(before, after))
    assert torch.equal(W.grad, torch.ones_like(W)) and V.grad is None and unused.grad is None
    assert pr["alpha"].grad is None


def test_make_estimator_names_and_orders():
    assert isinstance(make_estimator(1), FirstOrder) and isinstance(make_estimator(2), SecondOrder)
    est = make_estimator("Implicit_Neumann", terms=7)
    assert isinstance(est, ImplicitNeumann) and est.terms == 7
    assert ImplicitNeumann().terms == 5
    assert {"first-order", "second-order", "implicit-neumann", "single-level", "mixed-level", "mixed-level-2nd"} <= set(
        ESTIMATORS.names()
    )
    with pytest.raises(KeyError, match="mixed-level"):
        make_estimator("mixed-levle")
    with pytest.raises(ValueError):
        make_estimator(3)
