"""Architecture-gradient estimators: the alpha gradient each architecture step descends.

Bi-level problem min_a L_val(w*(a), a), w*(a) = argmin_w L_train(w, a), and its relatives:

* ``FirstOrder`` (DARTS-1st, M02/M03): grad_a L_val(w, a) at the current weights.
* ``SecondOrder`` (DARTS-2nd, [004] Eqs 2-3): one virtual SGD step, finite-difference HVP.
* ``ImplicitNeumann`` (iDARTS, M17): implicit-function-theorem hypergradient, inverse Hessian
  by a truncated Neumann series of Hessian-vector products (central differences by default).
* ``SingleLevel`` (DAS-single, M04): grad_a L_train(w, a); alpha and w fit the same data.
* ``MixedLevel`` (MiLeNAS M18, first-order reading of AllegroNAS Eq. 4):
  grad_a L_val + chi grad_a L_train at the current weights.
* ``MixedLevelSecondOrder`` (AllegroNAS M44, Eqs 4-5): both terms through the one-step unroll.

Trial axis: alpha may be (K, positions, ops) for K trials whose losses are summed; gradients
of a sum are per trial, and the finite-difference radius is taken per trial (``_shifted_gradients``).

Interface (docs/method_components.md): ``alpha_gradient(alpha, weights, train_loss, val_loss,
xi, state=None)`` returns the alpha gradient only (detached); weights' values and ``.grad`` are
left exactly as they were (``torch.autograd.grad`` never accumulates into ``.grad``; finite
differences write the weights in place and restore a backup). ``train_loss`` / ``val_loss``
must be deterministic functions of (weights, alpha): finite differences divide their change
by a small radius, so a closure that redraws randomness per call breaks them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from harness.methods.state import SearchState
from harness.registry import Registry
from harness.spaces.trial_axis import per_trial, trial_view

LossFn = Callable[[torch.Tensor], torch.Tensor]  # alpha -> loss on a fixed batch
Coefficient = float | Callable[[SearchState], float]  # a constant or a schedule of the search state


class Estimator(Protocol):
    name: str

    def alpha_gradient(
        self,
        alpha: torch.Tensor,
        weights: Sequence[torch.Tensor],
        train_loss: LossFn,
        val_loss: LossFn,
        xi: float,
        state: SearchState | None = None,
    ) -> torch.Tensor: ...


def _leaf(alpha: torch.Tensor) -> torch.Tensor:
    """A fresh leaf copy of alpha: gradients never depend on (or leak into) the caller's alpha graph."""
    return alpha.detach().requires_grad_(True)


def _trainable(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [w for w in weights if w.requires_grad]


def _grads(outputs: torch.Tensor, inputs: Sequence[torch.Tensor], **kwargs) -> list[torch.Tensor]:
    """d outputs / d inputs with zeros for inputs the output does not depend on."""
    if not isinstance(outputs, torch.Tensor) or not outputs.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    grads = torch.autograd.grad(outputs, list(inputs), allow_unused=True, **kwargs)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


def set_weights(weights: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
    """Copy ``values`` into ``weights`` in place, outside autograd (virtual and perturbed steps)."""
    with torch.no_grad():
        for w, value in zip(weights, values):
            w.copy_(value)


def _dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(xs, ys))


def _resolve(coefficient: Coefficient, state: SearchState | None, what: str) -> float:
    if callable(coefficient):
        if state is None:
            raise ValueError(f"{what} is a schedule of the search state; pass state= to alpha_gradient")
        return float(coefficient(state))
    return float(coefficient)


def _trial_count(alpha: torch.Tensor) -> int:
    """K for a (K, positions, ops) alpha; 1 for one trial's (positions, ops) alpha."""
    return alpha.shape[0] if alpha.dim() == 3 else 1


def _radii(v: Sequence[torch.Tensor], trials: int, fd_radius: float) -> list[float]:
    """Each trial's finite-difference step eps_t = fd_radius / ||v_t|| (DARTS [004] Eq. 3).

    ||v_t|| is summed as the single trial sums it (per parameter, then over parameters): the
    hypergradient is chaotic in float noise, so only the same order keeps trials comparable."""
    if trials == 1:
        return [fd_radius / (math.sqrt(float(_dot(v, v))) + 1e-12)]
    views = [trial_view(x, trials) for x in v]
    return [fd_radius / (math.sqrt(float(sum((x[t] * x[t]).sum() for x in views))) + 1e-12) for t in range(trials)]


def _shifted_gradients(base, weights, v, trials: int, fd_radius: float, gradients):
    """``gradients()`` at base + eps_t v and at base - eps_t v, each trial on its own radius eps_t.

    ``gradients`` reads the live ``weights`` (set here; the caller restores them). Returns
    (plus, minus, eps): the two lists of gradients and the radii, for a central difference
    [plus - minus] / (2 eps_t), the Hessian(-mixed)-vector product without double backward."""
    eps = _radii(v, trials, fd_radius)
    shifted = []
    for sign in (1.0, -1.0):
        if trials == 1:
            set_weights(weights, [b + sign * eps[0] * x for b, x in zip(base, v)])
        else:
            scale = torch.tensor([sign * e for e in eps], dtype=v[0].dtype, device=v[0].device)
            set_weights(weights, [b + per_trial(scale, x, trials) * x for b, x in zip(base, v)])
        shifted.append(gradients())
    return shifted[0], shifted[1], eps


def _central_difference(plus, minus, eps: list[float], trials: int) -> torch.Tensor:
    """[plus - minus] / (2 eps_t) per trial of a trial-major tensor (or one trial's tensor)."""
    if trials == 1:
        return (plus - minus) / (2 * eps[0])
    denominators = torch.tensor([2 * e for e in eps], dtype=plus.dtype, device=plus.device)
    return (plus - minus) / per_trial(denominators, plus, trials)


class _Unroll:
    """One virtual SGD step w' = w - xi grad_w L_train(w, a), with finite-difference mixed HVPs.

    ``hypergradient(loss)`` = d/da loss(w'(a), a) ~ grad_a loss(w', a) - xi * HVP, where
    HVP = [grad_a L_train(w+, a) - grad_a L_train(w-, a)] / (2 eps), w+- = w +- eps v,
    v = grad_w' loss(w', a), eps = fd_radius / ||v|| (DARTS [004] Eq. 3, AllegroNAS Eq. 5).
    The weights sit at w' between construction and ``restore``; every HVP restores w first.

    Over K trials (alpha (K, positions, ops), trial-major weights, losses summed over trials)
    each trial has its own radius eps_t = fd_radius / ||v_t|| over its own slices of the weights.
    """

    def __init__(self, alpha, weights, train_loss: LossFn, xi: float, fd_radius: float) -> None:
        self.alpha, self.weights, self.train_loss, self.xi, self.fd_radius = alpha, weights, train_loss, xi, fd_radius
        self.trials = _trial_count(alpha)
        self.backup = [w.detach().clone() for w in weights]
        grads = _grads(train_loss(alpha.detach()), weights)
        self.unrolled = [b - xi * g for b, g in zip(self.backup, grads)]
        self._set(self.unrolled)

    def _set(self, values) -> None:
        set_weights(self.weights, values)

    def hypergradient(self, loss: LossFn) -> torch.Tensor:
        self._set(self.unrolled)
        d_alpha, *v = _grads(loss(self.alpha), [self.alpha, *self.weights])
        (plus,), (minus,), eps = _shifted_gradients(self.backup, self.weights, v, self.trials, self.fd_radius,
                                                    lambda: _grads(self.train_loss(self.alpha), [self.alpha]))
        if self.trials == 1:  # (xi * difference) / (2 eps): the order the stored one-trial records used
            return d_alpha - self.xi * (plus - minus) / (2 * eps[0])
        return d_alpha - self.xi * _central_difference(plus, minus, eps, self.trials)

    def restore(self) -> None:
        self._set(self.backup)


class FirstOrder:
    name = "first-order"

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float, state=None):
        a = _leaf(alpha)
        return _grads(val_loss(a), [a])[0]


class SecondOrder:
    """DARTS second order ([004] Eqs 2-3): d/da L_val(w - xi grad_w L_train(w, a), a), FD HVP."""

    name = "second-order"

    def __init__(self, fd_radius: float = 0.01) -> None:
        self.fd_radius = fd_radius  # 0.01 in DARTS ([004] Eq. 3: eps = 0.01 / ||v||)

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float, state=None):
        unroll = _Unroll(_leaf(alpha), _trainable(weights), train_loss, xi, self.fd_radius)
        try:
            return unroll.hypergradient(val_loss)
        finally:
            unroll.restore()


class ImplicitNeumann:
    """iDARTS (M17, [002] Eq. 3.12): implicit hypergradient with a truncated Neumann series.

    grad = dL_val/da - gamma * dL_val/dw  sum_{k=0}^{K} [I - gamma H]^k  d2L_train/(dw da),
    H = d2L_train/dw2, all at the current weights (taken as the approximate w*). The series
    times gamma approximates H^-1 (exactly as K -> inf when 0 < gamma < 2 / lambda_max(H)).
    K = 0 is DARTS-2nd's correction at the current weights. ``gamma`` defaults to ``xi`` (the
    weight learning rate, as in M17: "gamma = learning rate").

    ``terms`` default 5: our choice (K is not stated in M17); each term costs one HVP.
    ``hvp``: how the products with H and the mixed block are taken (M17 does not say):
    ``"difference"`` (default) as central differences of exact gradients at w +- eps p, eps =
    fd_radius / ||p|| per trial, as DARTS-2nd takes its one product ([004] Eq. 3): two first-order
    passes each, through the fused kernel; ``"exact"`` by double backward through one train-loss
    forward, which the fused kernel only gives through its reference ops (measured: docs/engine.md).
    """

    name = "implicit-neumann"
    HVP_MODES = ("difference", "exact")

    def __init__(self, terms: int = 5, gamma: float | None = None, hvp: str = "difference",
                 fd_radius: float = 0.01) -> None:
        if terms < 0:
            raise ValueError(f"terms must be >= 0, got {terms}")
        if hvp not in self.HVP_MODES:
            raise ValueError(f"hvp must be one of {', '.join(self.HVP_MODES)}; got {hvp!r}")
        self.terms, self.gamma, self.hvp, self.fd_radius = int(terms), gamma, hvp, float(fd_radius)

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float, state=None):
        gamma = xi if self.gamma is None else self.gamma
        a, weights = _leaf(alpha), _trainable(weights)
        d_alpha, *v = _grads(val_loss(a), [a, *weights])
        if self.hvp == "exact":
            return d_alpha - gamma * self._exact_series(a, weights, train_loss, v, gamma)
        trials = _trial_count(a)
        base = [w.detach().clone() for w in weights]
        try:
            p, acc = v, [x.clone() for x in v]
            for _ in range(self.terms):
                plus, minus, eps = _shifted_gradients(base, weights, p, trials, self.fd_radius,
                                                      lambda: _grads(train_loss(a), weights))
                p = [x - gamma * _central_difference(hi, lo, eps, trials) for x, hi, lo in zip(p, plus, minus)]
                acc = [s + x for s, x in zip(acc, p)]
            (plus,), (minus,), eps = _shifted_gradients(base, weights, acc, trials, self.fd_radius,
                                                        lambda: _grads(train_loss(a), [a]))
        finally:
            set_weights(weights, base)
        return d_alpha - gamma * _central_difference(plus, minus, eps, trials)

    def _exact_series(self, a, weights, train_loss: LossFn, v, gamma: float) -> torch.Tensor:
        """d2L_train/(da dw) . sum_k p_k with exact Hessian-vector products (double backward)."""
        g_w = _grads(train_loss(a), weights, create_graph=True)
        p, acc = v, [x.clone() for x in v]
        for _ in range(self.terms):
            hp = _grads(_dot(g_w, p), weights, retain_graph=True)
            p = [x - gamma * h for x, h in zip(p, hp)]
            acc = [s + x for s, x in zip(acc, p)]
        return _grads(_dot(g_w, acc), [a])[0]


class SingleLevel:
    """DAS-single (M04): single-level optimization, grad_a L_train(w, a).

    M04 does not say which loss drives alpha; single level means alpha and w fit the same
    (training) data, so the training loss (our choice, as in single-level DARTS baselines).
    """

    name = "single-level"

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float, state=None):
        a = _leaf(alpha)
        return _grads(train_loss(a), [a])[0]


class MixedLevel:
    """MiLeNAS (M18), first order: grad_a L_val(w, a) + chi * grad_a L_train(w, a) (AllegroNAS Eq. 4
    at the current weights). ``chi``: a float or a schedule ``chi(state) -> float``.
    """

    name = "mixed-level"

    def __init__(self, chi: Coefficient = 1.0) -> None:
        self.chi = chi  # default 1: our choice (M18 gives no value), equal weight on both losses

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float, state=None):
        chi = _resolve(self.chi, state, "chi")
        a = _leaf(alpha)
        loss = val_loss(a) if chi == 0.0 else val_loss(a) + chi * train_loss(a)
        return _grads(loss, [a])[0]


class MixedLevelSecondOrder:
    """AllegroNAS (M44, [004] Eqs 4-5): d/da [L_val(w', a) + chi L_train(w', a)], w' = w - xi grad_w L_train.

    Each term gets its own finite-difference HVP of L_train (the unroll is the only path from a
    to w'): the val term at w1,2 = w +- s_val grad_w' L_val(w'), the train term at
    w3,4 = w +- s_train grad_w' L_train(w'), s_* = fd_radius / ||grad_w' L_*(w')||.
    Eq. 5's last line is garbled (only the val term, both FD points printed as w); we read it,
    from the line before it and the w3,4 / s_train definitions, as
      grad_a L_val(w') - xi [grad_a L_train(w1) - grad_a L_train(w2)] / (2 s_val)
      + chi (grad_a L_train(w') - xi [grad_a L_train(w3) - grad_a L_train(w4)] / (2 s_train)).
    ``chi``: a float or a schedule ``chi(state) -> float`` (M44 ramps it, Eq. 6).
    """

    name = "mixed-level-2nd"

    def __init__(self, chi: Coefficient = 1.0, fd_radius: float = 0.01) -> None:
        self.chi = chi  # default 1: our choice, as MixedLevel; AllegroNAS uses the Eq. 6 ramp to 0.1
        self.fd_radius = fd_radius  # 0.01 in [004] Eq. 5

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float, state=None):
        chi = _resolve(self.chi, state, "chi")
        unroll = _Unroll(_leaf(alpha), _trainable(weights), train_loss, xi, self.fd_radius)
        try:
            grad = unroll.hypergradient(val_loss)
            if chi != 0.0:
                grad = grad + chi * unroll.hypergradient(train_loss)
            return grad
        finally:
            unroll.restore()


ESTIMATORS: Registry[Callable[..., Estimator]] = Registry("estimator")
ESTIMATORS.register("first-order", FirstOrder)
ESTIMATORS.register("second-order", SecondOrder)
ESTIMATORS.register("implicit-neumann", ImplicitNeumann)
ESTIMATORS.register("single-level", SingleLevel)
ESTIMATORS.register("mixed-level", MixedLevel)
ESTIMATORS.register("mixed-level-2nd", MixedLevelSecondOrder)


def make_estimator(spec: int | str, **options) -> Estimator:
    """An estimator by unroll order (0/1: first order, 2: second order) or registered name + options."""
    if isinstance(spec, str):
        return ESTIMATORS.get(spec)(**options)
    if options:
        raise ValueError("options need an estimator name, not an unroll order")
    if spec in (0, 1):
        return FirstOrder()
    if spec == 2:
        return SecondOrder()
    raise ValueError(f"unroll order must be 1 (first order) or 2 (second order), got {spec!r}")
