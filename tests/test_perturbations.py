"""Defining properties of the perturbation components (SDARTS, NoisyDARTS, DARTS-, P-DARTS, FGSM)."""

from __future__ import annotations

import pytest
import torch

from harness.methods.perturbations import (
    AdversarialAlpha,
    AuxiliarySkip,
    MixHook,
    NoisyInputs,
    ParameterFreeDropout,
    RandomSmoothing,
    fgsm_measurement,
    project_simplex_box,
)
from harness.methods.state import SearchState

OPS = ("lgd", "net", "roll", "noise", "zero")
PFREE = torch.tensor([False, False, True, True, True])


def make_state(seed=0, training=True, epoch=0, epochs=1, step=0, steps_per_epoch=1):
    return SearchState(
        epoch=epoch,
        epochs=epochs,
        step=step,
        steps_per_epoch=steps_per_epoch,
        generator=torch.Generator().manual_seed(seed),
        training=training,
        ops=OPS,
        parameter_free=PFREE,
    )


def tiny_mixture(P=3, K=4, N=6, seed=0):
    """A tiny 'supernet': fixed op outputs O (P, K, N) mixed by softmax(alpha), squared error to a target."""
    g = torch.Generator().manual_seed(seed)
    outs = torch.randn(P, K, N, generator=g)
    target = torch.randn(P, N, generator=g)
    calls = []

    def loss(a):
        calls.append(a)
        mix = (torch.softmax(a, dim=-1).unsqueeze(-1) * outs).sum(dim=1)
        return ((mix - target) ** 2).mean()

    alpha = torch.randn(P, K, generator=g)
    return alpha, loss


# ---------------------------------------------------------------- SDARTS


def test_simplex_box_projection_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(5, 4, generator=g), dim=-1)
    eps = 0.1
    lo, hi = (p - eps).clamp(min=0), (p + eps).clamp(max=1)
    v = p + 0.5 * torch.randn(5, 4, generator=g)
    q = project_simplex_box(v, lo, hi)
    assert torch.allclose(q.sum(-1), torch.ones(5), atol=1e-5)
    assert (q >= lo - 1e-7).all() and (q <= hi + 1e-7).all()
    # Projection optimality: no feasible random point is closer to v.
    for _ in range(200):
        z = project_simplex_box(torch.rand(5, 4, generator=g), lo, hi)  # feasible points
        assert ((z - v) ** 2).sum(-1).ge(((q - v) ** 2).sum(-1) - 1e-5).all()


def test_random_smoothing_alpha_mode_is_uniform_in_the_ball():
    alpha = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    rs = RandomSmoothing(epsilon=0.2, epsilon_start=None, on="alpha")
    state = make_state(seed=3)
    deltas = torch.stack([rs.perturb(alpha, None, state) - alpha for _ in range(50)])
    assert deltas.abs().max() <= 0.2 + 1e-6
    # U[-e, e]: mean 0, variance e^2/3, and a flat histogram over 4 bins.
    assert abs(float(deltas.mean())) < 0.01
    assert abs(float(deltas.var()) - 0.2**2 / 3) < 0.001
    counts = torch.histc(deltas, bins=4, min=-0.2, max=0.2)
    assert ((counts / deltas.numel() - 0.25).abs() < 0.02).all()


def test_random_smoothing_weights_mode_stays_on_simplex_and_in_ball():
    alpha = torch.randn(10, 5, generator=torch.Generator().manual_seed(0))
    p = torch.softmax(alpha, -1)
    rs = RandomSmoothing()  # defaults: epsilon 0.03 -> 0.3 ramp, softmax weights
    state = make_state(seed=2, epoch=5, epochs=10)
    eps = rs.current_epsilon(state)
    assert eps == pytest.approx(0.03 + 0.27 * 0.5)
    for _ in range(20):
        out = rs.perturb(alpha, None, state)
        q = torch.softmax(out, -1)
        assert torch.isfinite(out).all()
        assert (q - p).abs().max() <= eps + 1e-5
        assert torch.allclose(q.sum(-1), torch.ones(10), atol=1e-5)
    assert not torch.allclose(torch.softmax(rs.perturb(alpha, None, state), -1), p, atol=1e-3)
    # determinism: the draw comes from state.generator only
    a = RandomSmoothing().perturb(alpha, None, make_state(seed=7))
    b = RandomSmoothing().perturb(alpha, None, make_state(seed=7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("on", ["alpha", "weights"])
def test_adversarial_alpha_increases_loss_and_stays_in_ball(on):
    alpha, loss = tiny_mixture()
    alpha = alpha.clone().requires_grad_(True)
    before = alpha.detach().clone()
    adv = AdversarialAlpha(epsilon=0.3, epsilon_start=None, on=on)
    state = make_state(seed=0)
    out = adv.perturb(alpha, loss, state)
    assert not out.requires_grad and alpha.grad is None
    assert torch.equal(alpha.detach(), before)
    center = before if on == "alpha" else torch.softmax(before, -1)
    moved = out if on == "alpha" else torch.softmax(out, -1)
    assert (moved - center).abs().max() <= 0.3 + 1e-5
    base = float(loss(before))
    adv_loss = float(loss(out))
    rs = RandomSmoothing(epsilon=0.3, epsilon_start=None, on=on)
    rs_losses = [float(loss(rs.perturb(before, None, state))) for _ in range(20)]
    assert adv_loss > base
    assert adv_loss > max(rs_losses)


def test_adversarial_alpha_reaches_the_linear_maximum():
    # L(a) = <c, a> in alpha space: the maximum over the L-inf ball is a + eps sign(c).
    c = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    alpha = torch.zeros(4, 3)
    out = AdversarialAlpha(epsilon=0.1, epsilon_start=None, on="alpha").perturb(
        alpha, lambda a: (c * a).sum(), make_state()
    )
    assert torch.allclose(out, 0.1 * c.sign(), atol=1e-6)


def test_adversarial_alpha_weights_mode_near_lp_optimum():
    # L = <c, softmax(a)>: over {simplex, |q - p| <= eps} the max is a fractional knapsack.
    g = torch.Generator().manual_seed(2)
    c = torch.randn(6, 4, generator=g)
    alpha = torch.randn(6, 4, generator=g)
    p = torch.softmax(alpha, -1)
    eps = 0.2
    loss = lambda a: (c * torch.softmax(a, -1)).sum()
    out = AdversarialAlpha(epsilon=eps, epsilon_start=None, steps=20).perturb(alpha, loss, make_state())
    best = 0.0
    for r in range(6):
        lo, hi = (p[r] - eps).clamp(min=0), (p[r] + eps).clamp(max=1)
        q, mass = lo.clone(), 1 - float(lo.sum())
        for k in torch.argsort(c[r], descending=True):
            add = min(mass, float(hi[k] - lo[k]))
            q[k] += add
            mass -= add
        best += float((c[r] * q).sum())
    base = float((c * p).sum())
    # signed steps lose the gradient's magnitudes, so sign-PGD stalls near (not at) the LP vertex
    assert float(loss(out)) >= base + 0.9 * (best - base)
    assert float(loss(out)) <= best + 1e-4


def test_adversarial_alpha_leaves_model_weights_without_grad():
    w = torch.randn(3, requires_grad=True)
    alpha = torch.zeros(2, 3)
    loss = lambda a: (torch.softmax(a, -1) @ w).pow(2).sum()
    AdversarialAlpha(epsilon_start=None).perturb(alpha, loss, make_state())
    assert w.grad is None


def test_weight_step_perturbations_off_outside_training():
    alpha, loss = tiny_mixture()
    for pert in (RandomSmoothing(), AdversarialAlpha()):
        assert torch.equal(pert.perturb(alpha, loss, make_state(training=False)), alpha)


# ---------------------------------------------------------------- mix hooks


def test_hooks_are_identity_when_not_training():
    u = torch.randn(4, 1, 50, generator=torch.Generator().manual_seed(0))
    state = make_state(training=False)
    hooks = [MixHook(), NoisyInputs(), AuxiliarySkip(), ParameterFreeDropout(rate=0.5)]
    for hook in hooks:
        for op in OPS:
            assert torch.equal(hook.op_input(u, op, 0, state), u)
            assert torch.equal(hook.op_output(u, op, 0, state), u)
        assert hook.extra_term(u, 0, state) is None


def test_noisy_inputs_touch_only_parameter_free_ops_with_right_statistics():
    u = torch.randn(64, 1, 50, generator=torch.Generator().manual_seed(0))
    hook = NoisyInputs(mean=0.1, std=0.2)
    state = make_state(seed=4)
    for op in ("lgd", "net", "zero"):
        assert torch.equal(hook.op_input(u, op, 3, state), u)
    for op in ("roll", "noise"):
        d = hook.op_input(u, op, 3, state) - u
        assert abs(float(d.mean()) - 0.1) < 0.01
        assert abs(float(d.std()) - 0.2) < 0.01
    # ops are identified through state.parameter_free: mark 'lgd' parameter-free instead
    state.parameter_free = torch.tensor([True, False, False, False, False])
    assert not torch.equal(hook.op_input(u, "lgd", 0, state), u)
    assert torch.equal(hook.op_input(u, "roll", 0, state), u)
    # an explicit op list overrides
    assert torch.equal(NoisyInputs(ops=("net",)).op_input(u, "roll", 0, state), u)
    assert not torch.equal(NoisyInputs(ops=("net",)).op_input(u, "net", 0, state), u)


def test_auxiliary_skip_coefficient_decays_linearly():
    hook = AuxiliarySkip(beta_start=1.0, beta_end=0.0)
    assert hook.coefficient(0.0) == 1.0
    assert hook.coefficient(1.0) == 0.0
    assert hook.coefficient(0.25) == pytest.approx(0.75)
    assert AuxiliarySkip(beta_start=0.7, beta_end=0.1).coefficient(1.0) == pytest.approx(0.1)
    u = torch.randn(2, 1, 50, generator=torch.Generator().manual_seed(0))
    state = make_state(epoch=1, epochs=4, step=1, steps_per_epoch=2)  # progress 3/8
    assert torch.allclose(hook.extra_term(u, 0, state), (1 - 3 / 8) * u)


def test_parameter_free_dropout_rate_and_scaling():
    out = torch.ones(128, 1, 50)
    hook = ParameterFreeDropout(rate=0.4)
    state = make_state(seed=1)  # progress 0: full rate
    assert torch.equal(hook.op_output(out, "net", 0, state), out)
    dropped = hook.op_output(out, "roll", 0, state)
    zero_frac = float((dropped == 0).float().mean())
    assert abs(zero_frac - 0.4) < 0.01
    assert torch.allclose(dropped[dropped != 0], torch.full_like(dropped[dropped != 0], 1 / 0.6))
    # linear decay over progress; exponential per epoch
    half = make_state(epoch=1, epochs=2)
    assert hook.current_rate(half) == pytest.approx(0.2)
    assert ParameterFreeDropout(rate=0.4, schedule="exponential", decay=0.2).current_rate(
        make_state(epoch=3, epochs=10)
    ) == pytest.approx(0.4 * torch.exp(torch.tensor(-0.6)).item())
    assert torch.equal(ParameterFreeDropout(rate=0.0).op_output(out, "roll", 0, state), out)


# ---------------------------------------------------------------- FGSM


def test_fgsm_matches_sign_gradient_and_increases_convex_loss():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(8, 5, generator=g)
    x = torch.randn(5, generator=g)
    y = torch.randn(8, generator=g)
    w = torch.randn(5, requires_grad=True)
    loss_fn = lambda yy: ((A @ x - yy) ** 2).sum() + (w**2).sum() * 0
    eps = 0.05
    y_adv = fgsm_measurement(y, loss_fn, eps)
    expected = y + eps * torch.sign(2 * (y - A @ x))  # closed-form gradient of the squared residual
    assert torch.allclose(y_adv, expected)
    assert not y_adv.requires_grad and w.grad is None
    assert float(loss_fn(y_adv).detach()) > float(loss_fn(y).detach())
