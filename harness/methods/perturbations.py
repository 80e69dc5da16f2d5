"""Perturbations: of alpha during weight steps (SDARTS), inside mixed ops (NoisyDARTS, DARTS-,
P-DARTS dropout) and of measurements (E2RNAS adversarial examples).

Two kinds (docs/method_components.md):

* weight-step perturbations, ``perturb(alpha, train_loss, state) -> alpha'`` (detached): the
  weight step trains under alpha' instead of alpha (SDARTS, M21).
* mix hooks, called inside every mixed op while ``state.training``: ``op_input(u, op_name,
  position, state)``, ``op_output(out, op_name, position, state)``, ``extra_term(u, position,
  state)`` (added to the mixed op's output, or None). Outside training they are the identity.

[001]'s op set has no skip connection. The "skip-like" ops the mix hooks target are the
parameter-free ops (roll, noise; 'zero' is skipped since its output ignores its input and is
already zero): like skip, they win early because they need no training (M26's reading of [001]).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from harness.methods.state import SearchState
from harness.spaces.ops import PARAMETER_FREE_OPS

LossFn = Callable[[torch.Tensor], torch.Tensor]

SKIP_OP = "skip_connect"  # the DARTS cell space's skip connection ([003] section IV-B1)

# Added before the log that maps perturbed mixing weights back to alpha, so that exact zeros
# stay finite (softmax(log(q + tiny)) = q up to ~1e-12).
_LOG_FLOOR = 1e-12


# --------------------------------------------------------------------------- SDARTS (M21)


def project_simplex_box(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, iters: int = 40) -> torch.Tensor:
    """Euclidean projection of each row of v onto {q : sum q = 1, lo <= q <= hi}.

    q = clamp(v - tau, lo, hi) with the row shift tau found by bisection (sum is monotone in
    tau). Needs sum(lo) <= 1 <= sum(hi) per row, which holds for the ball around a simplex point.
    """
    a = (v - hi).min(dim=-1, keepdim=True).values  # sum(clamp(v - a)) = sum(hi) >= 1
    b = (v - lo).max(dim=-1, keepdim=True).values  # sum(clamp(v - b)) = sum(lo) <= 1
    for _ in range(iters):
        mid = (a + b) / 2
        too_big = torch.minimum(torch.maximum(v - mid, lo), hi).sum(dim=-1, keepdim=True) > 1
        a = torch.where(too_big, mid, a)
        b = torch.where(too_big, b, mid)
    return torch.minimum(torch.maximum(v - (a + b) / 2, lo), hi)


def _first(state):
    """The state of the first trial (what a row's trials share: epoch, training)."""
    return state[0] if isinstance(state, list) else state


class _SDARTSPerturbation:
    """Shared parts of SDARTS-RS / -ADV: the epsilon ramp and where the ball lives.

    ``on="weights"`` (default) perturbs the softmax mixing weights p = softmax(alpha), as the
    authors' public code does (it softmaxes the architecture parameters, adds delta, then
    clips to the simplex); the result is returned as alpha' = log(q) so that softmax(alpha') = q.
    This assumes the softmax relaxation (SDARTS uses softmax). Where the public code clips and
    renormalises (which can leave the ball), we project exactly onto simplex n ball.
    ``on="alpha"`` is the literal M21 formula L_train(w, alpha + delta), for any relaxation.

    epsilon ramps linearly per epoch from ``epsilon_start`` to ``epsilon`` (public code:
    0.03 -> 0.3); ``epsilon_start=None`` keeps it constant.

    ``perturb(alpha, train_loss, state)`` takes one trial's (positions, ops) alpha and its state,
    or K trials' (K, positions, ops) alpha and their K states: each trial draws from its own
    stream, and PGD's ascent direction for trial t is the gradient of the summed loss in its
    block, which is its own loss's (trials do not interact).
    """

    def __init__(self, epsilon: float = 0.3, epsilon_start: float | None = 0.03, on: str = "weights") -> None:
        if epsilon < 0 or (epsilon_start is not None and epsilon_start < 0):
            raise ValueError("SDARTS epsilon must be >= 0")
        if on not in ("weights", "alpha"):
            raise ValueError(f"SDARTS perturbation acts on 'weights' or 'alpha', got {on!r}")
        self.epsilon = epsilon
        self.epsilon_start = epsilon_start
        self.on = on

    def current_epsilon(self, state: SearchState | list[SearchState] | None) -> float:
        state = _first(state)
        if self.epsilon_start is None or state is None:
            return self.epsilon
        return self.epsilon_start + (self.epsilon - self.epsilon_start) * state.epoch / max(state.epochs, 1)

    def _center(self, alpha: torch.Tensor) -> torch.Tensor:
        alpha = alpha.detach()
        return torch.softmax(alpha, dim=-1) if self.on == "weights" else alpha

    def _project(self, center: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
        if self.on == "alpha":
            return center + (v - center).clamp(-eps, eps)
        lo, hi = (center - eps).clamp(min=0.0), (center + eps).clamp(max=1.0)
        return project_simplex_box(v, lo, hi)

    def _to_alpha(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.on == "alpha" else torch.log(v + _LOG_FLOOR)

    def _uniform(self, center: torch.Tensor, eps: float, state: SearchState | list[SearchState]) -> torch.Tensor:
        if isinstance(state, list):  # K trials: trial t's (positions, ops) block from its own stream
            return torch.stack([self._uniform(c, eps, s) for c, s in zip(center, state)])
        return (2 * state.rand(center.shape, dtype=center.dtype).to(center.device) - 1) * eps


class RandomSmoothing(_SDARTSPerturbation):
    """SDARTS-RS (M21): train w under alpha + delta, delta ~ U[-eps, eps] per entry.

    Defaults: public SDARTS code (epsilon 0.03 -> 0.3, softmax weights); see _SDARTSPerturbation.
    """

    name = "sdarts-rs"

    def perturb(self, alpha: torch.Tensor, train_loss: LossFn | None, state) -> torch.Tensor:
        if not _first(state).training:
            return alpha.detach()
        eps = self.current_epsilon(state)
        center = self._center(alpha)
        q = self._project(center, center + self._uniform(center, eps, state), eps)
        return self._to_alpha(q).detach()


class AdversarialAlpha(_SDARTSPerturbation):
    """SDARTS-ADV (M21): train w under argmax_{||delta||_inf <= eps} L_train(w, alpha + delta).

    The inner max is L-infinity PGD: a uniform random start in the ball, then ``steps`` signed
    gradient-ascent steps of size ``step_size`` each followed by projection onto the ball.
    Defaults: public SDARTS code (7 steps, step size 2 eps / steps, random start).
    Only the perturbation gets gradients (autograd.grad on it): alpha, the weights and their
    ``.grad`` are untouched.
    """

    name = "sdarts-adv"

    def __init__(
        self,
        epsilon: float = 0.3,
        steps: int = 7,
        step_size: float | None = None,
        epsilon_start: float | None = 0.03,
        on: str = "weights",
        random_start: bool = True,
    ) -> None:
        super().__init__(epsilon, epsilon_start, on)
        if steps < 1:
            raise ValueError("SDARTS-ADV needs steps >= 1")
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start

    def perturb(self, alpha: torch.Tensor, train_loss: LossFn, state) -> torch.Tensor:
        if not _first(state).training:
            return alpha.detach()
        eps = self.current_epsilon(state)
        step = self.step_size if self.step_size is not None else 2 * eps / self.steps
        center = self._center(alpha)
        v = center.clone()
        if self.random_start:
            v = self._project(center, center + self._uniform(center, eps, state), eps)
        for _ in range(self.steps):
            probe = v.detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(train_loss(self._to_alpha(probe)), [probe])
            v = self._project(center, v + step * grad.sign(), eps)
        return self._to_alpha(v).detach()


# --------------------------------------------------------------------------- mix hooks


def is_parameter_free(op_name: str, state: SearchState) -> bool:
    """From ``state.parameter_free`` (aligned with ``state.ops``), else the op registry."""
    if state.parameter_free is not None and op_name in state.ops:
        return bool(state.parameter_free[state.ops.index(op_name)])
    return op_name in PARAMETER_FREE_OPS


class MixHook:
    """Identity hook; subclasses override the parts they need."""

    name = "identity"

    def op_input(self, u: torch.Tensor, op_name: str, position: int, state: SearchState) -> torch.Tensor:
        return u

    def op_output(self, out: torch.Tensor, op_name: str, position: int, state: SearchState) -> torch.Tensor:
        return out

    def extra_term(self, u: torch.Tensor, position: int, state: SearchState) -> torch.Tensor | None:
        return None


class _SkipLikeHook(MixHook):
    """Targets the skip connection where the op set has one (the DARTS cell space: M22 and M28 act
    on skip_connect, in reduction cells its factorized reduce too), else the parameter-free ops."""

    def __init__(self, ops: tuple[str, ...] | None = None) -> None:
        self.ops = None if ops is None else tuple(ops)

    def targets(self, op_name: str, state: SearchState) -> bool:
        if self.ops is not None:
            return op_name in self.ops
        if SKIP_OP in state.ops:
            return op_name == SKIP_OP
        return op_name != "zero" and is_parameter_free(op_name, state)


class NoisyInputs(_SkipLikeHook):
    """NoisyDARTS (M22, [002] Eq. 3.30): o_skip(x + x~), x~ ~ N(mean, std^2), while training.

    Adaptation: [001] has no skip op, so the noise goes on the input of the parameter-free ops
    (``ops=None``) or of the ops named in ``ops``. Defaults mean 0, std 0.2: [002]'s ImageNet values.
    """

    name = "noisy-inputs"

    def __init__(self, mean: float = 0.0, std: float = 0.2, ops: tuple[str, ...] | None = None) -> None:
        super().__init__(ops)
        self.mean = mean
        self.std = std

    def op_input(self, u, op_name, position, state):
        if not state.training or not self.targets(op_name, state):
            return u
        noise = state.randn(u.shape, dtype=u.dtype).to(u.device)
        return u + self.mean + self.std * noise


class AuxiliarySkip(MixHook):
    """DARTS- (M23, [002] Eq. 3.24): every mixed op gets an extra beta * u, beta decaying to 0.

    beta(progress) = beta_start + (beta_end - beta_start) * progress (linear; DARTS-' default,
    1 -> 0). [001] has no skip op, so no op is removed from the softmax: the branch is only added.
    In the DARTS cell space the softmax keeps skip too (our choice: M23's "beta^skip" is not
    defined), and on a stride-2 edge u is the edge's parameter-free ``skip(u)``, 2x2 max pooling
    (our choice; not stated).
    """

    name = "auxiliary-skip"

    def __init__(self, beta_start: float = 1.0, beta_end: float = 0.0) -> None:
        self.beta_start = beta_start
        self.beta_end = beta_end

    def coefficient(self, progress: float) -> float:
        return self.beta_start + (self.beta_end - self.beta_start) * progress

    def extra_term(self, u, position, state):
        if not state.training:
            return None
        return self.coefficient(state.progress) * u


class ParameterFreeDropout(_SkipLikeHook):
    """P-DARTS (M28): operation-level dropout on the output of skip-like ops, rate decaying.

    Inverted dropout (kept entries scaled by 1/(1 - r), as nn.Dropout). Rate schedule:
    ``"linear"``: r = rate * (1 - progress) (our choice; M28 gives only "decayed gradually" to
    equal treatment at the end); ``"exponential"``: r = rate * exp(-decay * epoch) (public
    P-DARTS code, decay 0.2 per epoch). rate 0.4: our choice, the middle of P-DARTS' per-stage
    rates (0.1 / 0.4 / 0.7 in its public code). Targets as in NoisyInputs.
    """

    name = "parameter-free-dropout"

    def __init__(
        self, rate: float = 0.4, schedule: str = "linear", decay: float = 0.2, ops: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(ops)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        if schedule not in ("linear", "exponential"):
            raise ValueError(f"dropout schedule must be 'linear' or 'exponential', got {schedule!r}")
        self.rate = rate
        self.schedule = schedule
        self.decay = decay

    def current_rate(self, state: SearchState) -> float:
        if self.schedule == "linear":
            return self.rate * (1.0 - state.progress)
        return self.rate * math.exp(-self.decay * state.epoch)

    def op_output(self, out, op_name, position, state):
        if not state.training or not self.targets(op_name, state):
            return out
        r = self.current_rate(state)
        if r <= 0.0:
            return out
        keep = (state.rand(out.shape, dtype=out.dtype).to(out.device) >= r).to(out.dtype)
        return out * keep / (1.0 - r)


# --------------------------------------------------------------------------- E2RNAS (M43)


def fgsm_measurement(
    y: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], epsilon: float = 2 / 255
) -> torch.Tensor:
    """E2RNAS (M43) adversarial example, on the 1D measurement: y + epsilon * sign(grad_y loss_fn(y)).

    FGSM is what E2RNAS' search uses for L_adv. epsilon 2/255: its "epsilon = 2" read on the
    0-255 pixel scale, i.e. relative to a unit-range signal (our reading). Only y gets a gradient
    (autograd.grad), so no ``.grad`` is left on the model; the result is detached.
    """
    probe = y.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_fn(probe), [probe])
    return (y.detach() + epsilon * grad.sign()).detach()
