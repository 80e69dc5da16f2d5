"""Alpha regularizers: terms added to the architecture objective L_val(alpha) + penalty(alpha).

Each class has ``name``, a coefficient (``weight``; ``gamma`` for the novelty term) and
``penalty(alpha, state) -> scalar``, differentiable in alpha of shape (P, K). ``loss_scale``
is the factor the search loop applies to the validation-loss gradient (1 except for the
E2NAS novelty term, whose update is a convex combination of the two gradients).

Defaults that METHODS.md marks "not stated" are sized for our losses: at MSE 0.02-0.05 the
validation alpha-gradient is about 1e-3..4e-3 per entry (measured on the sequential
supernet, all ops, first 300 weight steps), so a default penalty's gradient is of that order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.spaces import PARAMETER_FREE_OPS
from harness.spaces.costs import op_costs
from harness.spaces.ops import OpConfig


class AlphaRegularizer:
    name = ""
    weight = 1.0
    loss_scale = 1.0  # factor on grad L_val in the alpha step

    def penalty(self, alpha: torch.Tensor, state) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def parameter_free_mask(alpha: torch.Tensor, state) -> torch.Tensor:
    """bool (K,) on alpha's device: ``state.parameter_free``, else derived from ``state.ops``."""
    mask = getattr(state, "parameter_free", None)
    if mask is None:
        ops = getattr(state, "ops", ())
        if len(ops) != alpha.shape[-1]:
            raise ValueError("the regularizer needs state.parameter_free or state.ops naming the K candidate ops")
        mask = torch.tensor([op in PARAMETER_FREE_OPS for op in ops])
    mask = torch.as_tensor(mask, dtype=torch.bool).to(alpha.device)
    if mask.shape != alpha.shape[-1:]:
        raise ValueError(f"parameter_free has shape {tuple(mask.shape)}, alpha has K = {alpha.shape[-1]}")
    return mask


class ZeroOneLoss(AlphaRegularizer):
    """FairDARTS' zero-one loss (M08, [002] Eq. 3.2): w01 * L01, L01 = -(1/N) sum_i (sigmoid(a_i) - 0.5)^2.

    Pushes every independent sigmoid weight to 0 or 1 so the discretized net matches the
    supernet. [002] calls N "the number of nodes in a cell"; we average over all P * K
    entries of alpha (our choice: a mean keeps w01 = 10, FairDARTS' value, independent of
    the space's size). Maximal (0) at sigmoid 0.5, minimal (-w01 / 4) at sigmoid 0 or 1.
    """

    name = "zero-one"

    def __init__(self, weight: float = 10.0) -> None:
        self.weight = weight

    def penalty(self, alpha, state=None):
        return -self.weight * ((torch.sigmoid(alpha) - 0.5) ** 2).mean()


class BetaDecay(AlphaRegularizer):
    """beta-DARTS' Beta-Decay (M20, [002] Eq. 3.14): lambda * sum_p logsumexp(alpha_p).

    Its gradient is softmax(alpha_p), so it decays the large (dominant) logits and keeps
    the softmax weights' value and spread small. lambda is not stated in METHODS.md; the
    authors' public code ramps it linearly with the epoch (0 -> 50 over 100 epochs) on a
    *mean* over edges of a cross-entropy objective. Our default 1e-2 (sum over positions)
    gives a gradient of ~1e-2 * softmax, the size of our MSE alpha-gradients; ``ramp``
    (default on, as in that code) scales it by ``state.progress``.
    """

    name = "beta-decay"

    def __init__(self, weight: float = 1e-2, ramp: bool = True) -> None:
        self.weight = weight
        self.ramp = ramp

    def coefficient(self, state) -> float:
        return self.weight * (float(state.progress) if self.ramp and state is not None else 1.0)

    def penalty(self, alpha, state=None):
        return self.coefficient(state) * torch.logsumexp(alpha, dim=-1).sum()


class L1ParameterFree(AlphaRegularizer):
    """CDARTS' L1 penalty (M31, [002] Eq. 3.32): lambda * sum over parameter-free ops of |alpha|.

    Counters the drift towards weight-free ops (roll, noise, zero here; skip and pooling
    in DARTS). lambda is not stated: our default 1e-3 makes the (constant) per-entry
    gradient the size of our MSE alpha-gradients.
    """

    name = "l1-parameter-free"

    def __init__(self, weight: float = 1e-3) -> None:
        self.weight = weight

    def penalty(self, alpha, state):
        mask = parameter_free_mask(alpha, state)
        return self.weight * alpha[..., mask].abs().sum()


def path_positions(space, n_positions: int) -> list[int]:
    """The positions on the network's deepest path, in order.

    Sequential space: every layer. Non-sequential space: the edges s_{i-1} -> s_i of every
    cell, cell by cell (PR-DARTS' alpha_{l,l+1}). Anything else: all positions.
    """
    edge_list = getattr(space, "edge_list", None)
    n_cells = getattr(space, "n_cells", None)
    if edge_list is None or n_cells is None or n_cells * len(edge_list) != n_positions:
        return list(range(n_positions))
    per_cell = [e for e, (j, i) in enumerate(edge_list) if i == j + 1]
    return [c * len(edge_list) + e for c in range(n_cells) for e in per_cell]


class PathRegularizer(AlphaRegularizer):
    """PR-DARTS' group-sparsity and path regularizers (M09, [002] Eqs 3.25-3.28).

    With gate open probabilities q = sigmoid(alpha - tau log(-a/b)) (the hard-concrete
    P(g != 0)):
    * L_skip = zeta * sum_p sum_{skip ops} q, zeta = 1/P (PR-DARTS' 2/(h(h-1)) = 1 / #edges);
    * L_non-skip = zeta / (r - 1) * sum_p sum_{other ops} q, r - 1 = the number of non-skip
      ops (r = K when there is one skip op);
    * L_path = prod_{p on path} sum_{parametric ops} q (``path_positions``), which rewards
      deep paths of weighted ops against the fast-converging shallow ones;
    penalty = lambda_skip L_skip + lambda_nonskip L_non-skip - lambda_path L_path. In 1D "skip" means the
    parameter-free ops. a, b, tau default to the hard-concrete values of Louizos et al.
    (2018), whose gates PR-DARTS uses. The lambdas are not stated (our choice): 0.1 for the
    two group terms gives per-entry gradients ~1e-3 with P = 10; L_path is a product of
    ~10 factors of size ~1.7 at alpha = 0 (value ~150), so lambda_path = 1e-4 keeps its gradient
    at the same ~1e-3 there (it grows with the gates; at most n_param^L in value).
    """

    name = "path"

    def __init__(
        self,
        lambda_skip: float = 0.1,
        lambda_nonskip: float = 0.1,
        lambda_path: float = 1e-4,
        a: float = -0.1,
        b: float = 1.1,
        tau: float = 2.0 / 3.0,
        path: Sequence[int] | None = None,
    ) -> None:
        if not a < 0 < 1 < b:
            raise ValueError(f"the stretch interval needs a < 0 < 1 < b, got a={a}, b={b}")
        self.lambda_skip, self.lambda_nonskip, self.lambda_path = lambda_skip, lambda_nonskip, lambda_path
        self.a, self.b, self.tau = a, b, tau
        self.path = None if path is None else list(path)

    @property
    def weight(self) -> float:
        return self.lambda_skip

    def open_probability(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha - self.tau * math.log(-self.a / self.b))

    def terms(self, alpha, state) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_skip, L_non-skip, L_path)."""
        q = self.open_probability(alpha)
        skip = parameter_free_mask(alpha, state)
        zeta = 1.0 / alpha.shape[0]
        l_skip = zeta * q[:, skip].sum()
        n_other = int((~skip).sum())
        l_other = zeta / max(n_other, 1) * q[:, ~skip].sum()
        path = self.path if self.path is not None else path_positions(getattr(state, "space", None), alpha.shape[0])
        l_path = q[path][:, ~skip].sum(dim=-1).prod()
        return l_skip, l_other, l_path

    def penalty(self, alpha, state):
        l_skip, l_other, l_path = self.terms(alpha, state)
        return self.lambda_skip * l_skip + self.lambda_nonskip * l_other - self.lambda_path * l_path


class NoveltyTerm(AlphaRegularizer):
    """E2NAS' novelty-augmented step (M19, [002] Eq. 3.10).

    alpha <- alpha - (1 - gamma) grad L_val - gamma grad N(alpha, A): the search loop
    multiplies grad L_val by ``loss_scale`` = 1 - gamma and adds the gradient of
    ``penalty`` = gamma * N. E2NAS' N lives in a VGAE latent space (not available here);
    our N is the negative Frobenius distance of softmax(alpha) to the nearest architecture
    in ``state.alpha_history``, so descending on N moves away from every visited
    architecture, the rich-get-richer counter. N = 0 with an empty history. gamma is not
    stated: its gradient has norm up to ~0.5 against ~1e-2..4e-2 for grad L_val at our
    losses, so our default 0.05 keeps novelty a secondary push.
    """

    name = "novelty"

    def __init__(self, gamma: float = 0.05, eps: float = 1e-12) -> None:
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"novelty gamma must be in [0, 1), got {gamma}")
        self.gamma = gamma
        self.eps = eps

    @property
    def weight(self) -> float:
        return self.gamma

    @property
    def loss_scale(self) -> float:
        return 1.0 - self.gamma

    def novelty(self, alpha: torch.Tensor, history: Sequence[torch.Tensor]) -> torch.Tensor:
        if not history:
            return alpha.sum() * 0.0
        p = torch.softmax(alpha, dim=-1)
        past = torch.stack([torch.as_tensor(h, dtype=alpha.dtype, device=alpha.device) for h in history])
        dist2 = ((p.unsqueeze(0) - torch.softmax(past, dim=-1)) ** 2).flatten(1).sum(dim=1)
        return -torch.sqrt(dist2.min() + self.eps)

    def penalty(self, alpha, state):
        return self.gamma * self.novelty(alpha, getattr(state, "alpha_history", []))


class CostBound(AlphaRegularizer):
    """E2RNAS' resource objectives (M43, Eqs 5-6): weight * |sum_p sum_o softmax(alpha_p)_o c_o - bound|.

    One class for both L_nop (parameter counts n_o) and L_flops (multiply-adds f_o); the
    expected cost of the relaxed net is pulled towards ``bound`` from either side.
    ``costs`` is (K,) or (P, K) in any unit consistent with ``bound``.
    """

    name = "cost-bound"

    def __init__(self, costs, bound: float, weight: float = 1.0) -> None:
        self.costs = torch.as_tensor(costs, dtype=torch.float64)
        self.bound = float(bound)
        self.weight = weight

    @classmethod
    def for_ops(
        cls,
        kind: str,
        ops: tuple[str, ...],
        n_positions: int,
        signal_length: int,
        measurement_length: int,
        op_config: OpConfig | None = None,
        bound_fraction: float = 0.5,
        weight: float = 1.0,
    ) -> CostBound:
        """``kind`` 'params' or 'flops' from ``op_costs``, normalized by the costliest net
        (P x the costliest op), so the expected cost is in [0, 1] and the bound is a fraction
        of it (E2RNAS' bounds are absolute DARTS sizes; 0.5 is our choice: half the maximum)."""
        params, flops = op_costs(ops, op_config, signal_length, measurement_length)
        if kind not in ("params", "flops"):
            raise ValueError(f"cost kind must be 'params' or 'flops', got {kind!r}")
        costs = torch.tensor(params if kind == "params" else flops, dtype=torch.float64)
        scale = float(costs.max()) * n_positions
        costs = costs / scale if scale > 0 else costs
        return cls(costs, bound_fraction, weight)

    def expected_cost(self, alpha: torch.Tensor) -> torch.Tensor:
        costs = self.costs.to(device=alpha.device, dtype=alpha.dtype)
        return (torch.softmax(alpha, dim=-1) * costs).sum()

    def penalty(self, alpha, state=None):
        return self.weight * (self.expected_cost(alpha) - self.bound).abs()


@dataclass
class CostObjective:
    """E2RNAS's parameter-count / FLOPs objective |sum_o softmax(alpha)_o c_o - bound| ([003] Eqs 5-6),
    built per trial from the 1D op costs and normalized by the costliest network, with the bound
    at ``bound_fraction`` of it (E2RNAS's bounds are absolute CIFAR sizes; see CostBound.for_ops)."""

    kind: str = "params"
    bound_fraction: float = 0.5
    weight: float = 1.0

    def build(self, ctx, space) -> CostBound:
        return CostBound.for_ops(
            self.kind,
            tuple(ctx.ops),
            space.n_positions,
            ctx.problem.config.n_points,
            ctx.problem.operator.shape[0],
            ctx.op_config,
            self.bound_fraction,
            self.weight,
        )
