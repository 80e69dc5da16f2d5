"""Relaxations: how architecture parameters alpha (positions x ops) become mixing weights.

Plain DARTS / DAS ([001] Eq. 2): w = softmax(alpha) per position. The other classes implement
the METHODS.md section 1.B relaxations: independent sigmoids (M08/M45), Gumbel-softmax
sampling (M11/M13/M14), hard-concrete gates (M09), sampled binary paths (M10) and PC-DARTS's
edge-normalized softmax (M16, ``EdgeNormalizedSoftmax``; its partial channels live in the cell
space, ``harness.spaces.darts_cell.mixing``). ``partial_channel_mix`` and ``edge_normalization``
are the same two PC-DARTS ideas as plain functions over (B, C, N) features and 1D edge lists.

Interface (docs/method_components.md): ``weights(alpha, state=None)`` gives the (P, K) mixing
weights, sampled from ``state.generator`` while ``state.training``, deterministic otherwise;
``probabilities(alpha)`` is deterministic and is what discretization ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import torch

from harness.methods.state import SearchState


class Relaxation(Protocol):
    name: str

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor: ...

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor: ...


def _sampling(state: SearchState | None) -> bool:
    """Stochastic relaxations sample only while searching; evaluation/probing is deterministic."""
    return state is not None and state.training


def _uniform(alpha: torch.Tensor, state: SearchState) -> torch.Tensor:
    """U(0, 1) noise shaped like alpha from the trial's generator, kept away from 0 and 1 so logs stay finite."""
    dtype = alpha.dtype if alpha.dtype.is_floating_point else torch.float32
    u = state.rand(alpha.shape, dtype=dtype).to(alpha.device)
    tiny = torch.finfo(dtype).tiny
    return u.clamp(tiny, 1.0 - torch.finfo(dtype).eps)


def _straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Forward value ``hard``, gradient of ``soft`` (Bengio et al. 2013 straight-through)."""
    return hard - soft.detach() + soft


def _one_hot(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like).scatter_(-1, index.unsqueeze(-1), 1.0)


class SoftmaxRelaxation:
    """DARTS/DAS softmax ([001] Eq. 2); with ``temperature`` tau, EnTranNAS's p = softmax(alpha / tau) (M30 Eq. 3.17).

    tau = 1 is plain DARTS. ``probabilities`` uses the same tau so discretization ranks exactly
    what was mixed (the ranking is tau-independent anyway).
    """

    name = "softmax"

    def __init__(self, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"softmax temperature must be > 0, got {temperature!r}")
        self.temperature = temperature

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor:
        return torch.softmax(alpha / self.temperature, dim=-1)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """What discretization ranks; for softmax the same as the mixing weights."""
        return torch.softmax(alpha / self.temperature, dim=-1)


class SigmoidRelaxation:
    """FairDARTS (M08, [002] Eq. 3.1) and D-DARTS (M45): w = sigmoid(alpha), independent per op.

    Ops no longer compete for a unit budget (the cause of skip-connection dominance FairDARTS
    targets); the zero-one loss pushing sigmoid(alpha) to {0, 1} is a regularizer, not here.
    """

    name = "sigmoid"

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor:
        return torch.sigmoid(alpha)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha)


class GumbelSoftmaxRelaxation:
    """Gumbel-softmax sampling of one op per position (GDAS M13, SNAS M14, FBNet M11).

    Training: w = softmax((alpha + G) / tau), G i.i.d. Gumbel(0, 1) from ``state.generator``
    (Jang et al. 2017 / Maddison et al. 2017), so argmax(alpha + G) ~ Categorical(softmax(alpha))
    and w tends to that one-hot sample as tau -> 0. ``hard=True`` (GDAS) forwards the exact
    one-hot with the soft sample's gradient (straight-through); the mixed op still evaluates all
    ops, so every alpha entry gets the straight-through gradient (GDAS's own code computes only the
    sampled op; the forward value is identical).

    Temperature follows ``state.progress`` t in [0, 1): "exponential" tau = tau_start *
    (tau_end / tau_start) ** t, "linear" tau = tau_start + (tau_end - tau_start) * t; tau_end is
    the limit at t = 1. Evaluation (state None or not training) returns softmax(alpha).
    Presets: :meth:`gdas`, :meth:`snas`, :meth:`fbnet`.
    """

    name = "gumbel-softmax"

    def __init__(
        self,
        tau_start: float = 1.0,
        tau_end: float = 1.0,
        hard: bool = False,
        anneal: Literal["exponential", "linear"] = "exponential",
    ) -> None:
        if tau_start <= 0 or tau_end <= 0:
            raise ValueError(f"Gumbel temperatures must be > 0, got {tau_start!r} -> {tau_end!r}")
        if anneal not in ("exponential", "linear"):
            raise ValueError(f"anneal must be 'exponential' or 'linear', got {anneal!r}")
        self.tau_start, self.tau_end, self.hard, self.anneal = tau_start, tau_end, hard, anneal
        self.name = "gumbel-hard" if hard else "gumbel-softmax"

    @classmethod
    def gdas(cls, tau_start: float = 10.0, tau_end: float = 0.1) -> GumbelSoftmaxRelaxation:
        """GDAS (Dong & Yang 2019, §4): hard straight-through samples, tau linearly 10 -> 0.1."""
        return cls(tau_start, tau_end, hard=True, anneal="linear")

    @classmethod
    def snas(cls, tau_start: float = 1.0, tau_end: float = 0.33) -> GumbelSoftmaxRelaxation:
        """SNAS (Xie et al. 2019): soft samples, exponential annealing ([002] §3.2.1 cites it for annealing).

        tau_start = 1 is SNAS's initial temperature lambda_0; tau_end = 0.33 is our choice (the
        paper's final value is not in METHODS.md; 0.33 is a common reimplementation default).
        """
        return cls(tau_start, tau_end, hard=False, anneal="exponential")

    @classmethod
    def fbnet(cls, tau_start: float = 5.0, decay_per_epoch: float = 0.045, epochs: int = 90) -> GumbelSoftmaxRelaxation:
        """FBNet (Wu et al. 2019, §4.1): soft samples, tau = 5 * exp(-0.045 * epoch) over its 90 search epochs.

        Mapped onto our progress: the same exponential from 5 to 5 * exp(-0.045 * 90) ~ 0.087.
        """
        return cls(tau_start, tau_start * math.exp(-decay_per_epoch * epochs), hard=False, anneal="exponential")

    def temperature(self, state: SearchState | None) -> float:
        t = 0.0 if state is None else min(max(float(state.progress), 0.0), 1.0)
        if self.anneal == "linear":
            return self.tau_start + (self.tau_end - self.tau_start) * t
        return self.tau_start * (self.tau_end / self.tau_start) ** t

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor:
        if not _sampling(state):
            return torch.softmax(alpha, dim=-1)
        gumbel = -torch.log(-torch.log(_uniform(alpha, state)))
        soft = torch.softmax((alpha + gumbel) / self.temperature(state), dim=-1)
        if not self.hard:
            return soft
        # argmax of the perturbed logits, not of ``soft``: identical in exact arithmetic, but
        # immune to softmax underflow ties at tiny tau.
        return _straight_through(_one_hot((alpha + gumbel).argmax(dim=-1), soft), soft)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(alpha, dim=-1)


class HardConcreteGates:
    """PR-DARTS (M09, [002] §3.2.2) stochastic gates: stretched, clipped concrete (Louizos et al. 2018).

    Training: g = min(1, max(0, a + (b - a) * sigmoid((log u - log(1 - u) + alpha) / tau))), u ~ U(0, 1),
    one independent gate per op; the clipping gives exact 0 (op off) and 1 with positive
    probability while g stays differentiable in alpha elsewhere. Evaluation: Louizos et al.'s
    deterministic gate min(1, max(0, a + (b - a) * sigmoid(alpha))).
    Defaults a = -0.1, b = 1.1, tau = 2/3 are Louizos et al.'s (PR-DARTS's values are not stated).
    """

    name = "hard-concrete"

    def __init__(self, a: float = -0.1, b: float = 1.1, tau: float = 2.0 / 3.0) -> None:
        if not (a < 0.0 and b > 1.0 and tau > 0.0):
            raise ValueError(f"hard-concrete gates need a < 0 < 1 < b and tau > 0, got a={a}, b={b}, tau={tau}")
        self.a, self.b, self.tau = a, b, tau

    def _stretch(self, s: torch.Tensor) -> torch.Tensor:
        return (self.a + (self.b - self.a) * s).clamp(0.0, 1.0)

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor:
        if not _sampling(state):
            return self._stretch(torch.sigmoid(alpha))
        u = _uniform(alpha, state)
        return self._stretch(torch.sigmoid((torch.log(u) - torch.log1p(-u) + alpha) / self.tau))

    def open_probability(self, alpha: torch.Tensor) -> torch.Tensor:
        """P(g != 0) = sigmoid(alpha - tau * log(-a / b)).

        The term summed in PR-DARTS's L_skip, L_non-skip and L_path ([002] Eqs 3.26-3.28).
        """
        return torch.sigmoid(alpha - self.tau * math.log(-self.a / self.b))

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """Ranks ops by the probability their gate is open (monotone in alpha)."""
        return self.open_probability(alpha)


class SampledPathRelaxation:
    """ProxylessNAS (M10, [002] Eqs 3.3-3.4) binary gates: exactly one op per position.

    Training: index ~ Categorical(p), p = softmax(alpha), drawn by inverse CDF from
    ``state.generator``; w = onehot - p.detach() + p, so the forward uses exactly one path and
    alpha gets the straight-through gradient (how ProxylessNAS routes gradients to p is not
    stated in METHODS.md; straight-through is our choice). Evaluation: softmax(alpha)
    (``eval_mode="softmax"``, keeps probes differentiable) or the most probable path ("argmax").
    """

    name = "sampled-path"

    def __init__(self, eval_mode: Literal["softmax", "argmax"] = "softmax") -> None:
        if eval_mode not in ("softmax", "argmax"):
            raise ValueError(f"eval_mode must be 'softmax' or 'argmax', got {eval_mode!r}")
        self.eval_mode = eval_mode

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor:
        p = torch.softmax(alpha, dim=-1)
        if not _sampling(state):
            return p if self.eval_mode == "softmax" else _straight_through(_one_hot(p.argmax(dim=-1), p), p)
        u = state.rand((*alpha.shape[:-1], 1), dtype=p.dtype).to(alpha.device)
        index = (torch.cumsum(p.detach(), dim=-1) <= u).sum(dim=-1).clamp(max=alpha.shape[-1] - 1)
        return _straight_through(_one_hot(index, p), p)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(alpha, dim=-1)


# ---------------------------------------------------------------- PC-DARTS (M16, [002] Eq. 3.33)


def sample_channels(channels: int, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """Sorted indices of the C/k channels that go through the mixed op (CPU long tensor).

    With a generator: a uniformly random subset. Without one: the first C/k channels, PC-DARTS's
    own slicing (it then relies on a channel shuffle between layers; we instead sample a fresh
    random subset per call, which gives every channel the same chance without reordering).
    """
    if k < 1 or channels % k != 0:
        raise ValueError(f"partial channels: k must be >= 1 and divide the channel count {channels}, got {k!r}")
    if generator is None:
        return torch.arange(channels // k)
    return torch.randperm(channels, generator=generator)[: channels // k].sort().values


def partial_channel_mix(
    u: torch.Tensor,
    op_fns: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """PC-DARTS mixed op: sum_k w_k o_k(S x) + (1 - S) x ([002] Eq. 3.33), x = u of shape (B, C, N).

    Only a 1/k channel subset S (:func:`sample_channels`) is mixed (each op maps (B, C/k, N) to
    the same shape); the other channels pass through unchanged, and the mixed channels are
    written back at their own positions, so channel order is preserved (no shuffle).
    ``weights``: (K,) mixing weights of this position (any relaxation's row).
    """
    if u.dim() != 3:
        raise ValueError(f"partial_channel_mix expects u of shape (B, C, N), got {tuple(u.shape)}")
    if weights.shape[-1] != len(op_fns):
        raise ValueError(f"{len(op_fns)} ops but weights of shape {tuple(weights.shape)}")
    idx = sample_channels(u.shape[1], k, generator).to(u.device)
    selected = u.index_select(1, idx)
    mixed = sum(w * fn(selected) for w, fn in zip(weights.to(u.dtype), op_fns))
    return u.index_copy(1, idx, mixed)


def edge_normalization(beta: torch.Tensor, edge_list: Sequence[tuple[int, int]]) -> torch.Tensor:
    """PC-DARTS edge normalization: softmax of beta over the incoming edges of each target node.

    ``edge_list``: (source, target) pairs as from ``harness.spaces.nonsequential.edges``; beta has
    shape (..., E) with E = len(edge_list) (e.g. (cells, E)), or is a flat vector of cells * E
    betas laid out cell by cell like alpha's positions. Returns weights of beta's shape.
    """
    n_edges = len(edge_list)
    if n_edges == 0:
        raise ValueError("edge_normalization needs at least one edge")
    flat = beta.dim() == 1 and beta.shape[0] != n_edges
    if flat:
        if beta.shape[0] % n_edges != 0:
            raise ValueError(f"{beta.shape[0]} betas do not split into cells of {n_edges} edges")
        beta = beta.reshape(-1, n_edges)
    if beta.shape[-1] != n_edges:
        raise ValueError(f"beta's last dimension {beta.shape[-1]} != number of edges {n_edges}")
    out = torch.empty_like(beta)
    for target in sorted({t for _, t in edge_list}):
        idx = torch.tensor([e for e, (_, t) in enumerate(edge_list) if t == target], device=beta.device)
        out = out.index_copy(-1, idx, torch.softmax(beta.index_select(-1, idx), dim=-1))
    return out.reshape(-1) if flat else out


class EdgeNormalizedSoftmax:
    """PC-DARTS (M16) edge normalization: w_ij = e_ij * softmax(alpha_ij), e = softmax of beta over
    the edges into each node ([002] section 3.2.3: "edge-normalization parameters beta_ij").

    alpha carries beta as one extra, last column (P, K + 1), so beta is an architecture parameter
    optimized with alpha by the same optimizer (as PC-DARTS's code does). ``groups``: the positions
    of each node's incoming edges (the space's ``node_groups()``). ``probabilities`` is the same
    product: PC-DARTS's own parsing multiplies the op weights by the edge weights before DARTS's
    rule (M16: "the exact combination is not stated").
    """

    name = "edge-normalized-softmax"

    def __init__(self, groups: Sequence[Sequence[int]]) -> None:
        self.groups = [torch.tensor(list(g), dtype=torch.long) for g in groups]
        if not self.groups or any(len(g) == 0 for g in self.groups):
            raise ValueError("edge normalization needs non-empty groups of positions")

    def edge_weights(self, beta: torch.Tensor) -> torch.Tensor:
        """softmax(beta) within each group, (P,)."""
        out = torch.zeros_like(beta)
        for g in self.groups:
            idx = g.to(beta.device)
            out = out.index_copy(0, idx, torch.softmax(beta.index_select(0, idx), dim=0))
        return out

    def weights(self, alpha: torch.Tensor, state: SearchState | None = None) -> torch.Tensor:
        return torch.softmax(alpha[:, :-1], dim=-1) * self.edge_weights(alpha[:, -1]).unsqueeze(-1)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.weights(alpha)
