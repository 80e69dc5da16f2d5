"""Early-stopping rules: end the search before the architecture collapses or once it has settled.

Each rule is called once per epoch, after the epoch's alpha update, with
``observe(epoch, alpha, state, probe) -> bool`` (True: stop after this epoch). ``signal`` holds
the tracked quantity per observed epoch (recorded per trial); ``rollback_alpha`` is the alpha to
discretize instead of the last one (DARTS-ES only), else None. ``reset()`` starts a new trial.
A rule holds one trial's history, so K trials of a run get K copies (``TrialStopping``).

* ``HessianEigenvalueStopping``: DARTS-ES (M25), dominant eigenvalue of nabla^2_alpha L_val.
* ``ParameterFreeCountStopping``: DARTS+ criterion 1 (M26), too many parameter-free ops.
* ``RankStabilityStopping``: DARTS+ criterion 2 (M26), alpha ranking of learnable ops settled.
* ``DistanceStabilityStopping``: DARTOpti (M46), architecture distance stable.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from harness.methods.hessian import dominant_eigenvalue
from harness.methods.perturbations import SKIP_OP
from harness.spaces.distance import architecture_distance


def _parameter_free(state) -> torch.Tensor:
    """bool (K,) over ``state.ops``; falls back to the op registry's flags."""
    if state.parameter_free is not None:
        return torch.as_tensor(state.parameter_free, dtype=torch.bool).cpu()
    from harness.spaces import PARAMETER_FREE_OPS

    return torch.tensor([op in PARAMETER_FREE_OPS for op in state.ops], dtype=torch.bool)


class HessianEigenvalueStopping:
    """DARTS-ES (RobustDARTS, M25): stop when the dominant eigenvalue of L_val in alpha rises fast.

    Each epoch the largest eigenvalue lambda_i of nabla^2_alpha ``probe.val_loss`` is recorded
    (``signal``). With lambda_bar(i) its mean over the last ``window`` epochs, the search stops at
    epoch i when lambda_bar(i - k) / lambda_bar(i) < ``threshold`` (for lambda_bar(i) > 0) and the
    alpha of epoch i - k is returned as ``rollback_alpha``: the architecture from before the
    curvature blew up. window = k = 5 and threshold = 0.75 are RobustDARTS's published values
    (Zela et al. 2020, section 4.3; METHODS.md: "not stated"). Our variant averages over a trailing
    window (causal: it needs no future epochs). ``min_epochs`` (our choice, 10): no stop fires
    before that epoch, so the alpha warm-up transient (frozen alpha, moving weights) is ignored.
    ``method``: see ``dominant_eigenvalue`` ("auto": exact dense Hessian for the 40-entry
    sequential alpha, power iteration for larger alpha).
    """

    name = "hessian-eigenvalue"

    def __init__(
        self,
        window: int = 5,
        k: int = 5,
        threshold: float = 0.75,
        min_epochs: int = 10,
        method: str = "auto",
        iterations: int = 100,
    ) -> None:
        if window < 1 or k < 1:
            raise ValueError("window and k must be >= 1")
        self.window, self.k, self.threshold, self.min_epochs = int(window), int(k), float(threshold), int(min_epochs)
        self.method, self.iterations = method, int(iterations)
        self.reset()

    def reset(self) -> None:
        self.signal: list[float] = []
        self._alphas: list[torch.Tensor] = []
        self.rollback_alpha: torch.Tensor | None = None
        self.stop_epoch: int | None = None
        self._epochs: list[int] = []

    def _local_average(self, i: int) -> float:
        return sum(self.signal[i - self.window + 1 : i + 1]) / self.window

    needs_eigenvalue = True  # over K trials the search measures every trial's at once (TrialStopping)

    def observe(self, epoch, alpha, state, probe, eigenvalue: float | None = None) -> bool:
        lam = eigenvalue
        if lam is None:
            lam = dominant_eigenvalue(
                probe.val_loss, alpha, method=self.method, iterations=self.iterations, generator=state.generator
            )
        self.signal.append(lam)
        self._alphas.append(alpha.detach().clone())
        self._epochs.append(int(epoch))
        i = len(self.signal) - 1
        if epoch < self.min_epochs or i - self.k < self.window - 1:
            return False
        now, before = self._local_average(i), self._local_average(i - self.k)
        if now > 0 and before < self.threshold * now:
            self.rollback_alpha = self._alphas[i - self.k]
            self.stop_epoch = self._epochs[i - self.k]
            return True
        return False


class ParameterFreeCountStopping:
    """DARTS+ criterion 1 (M26): stop once the genotype holds ``threshold`` or more parameter-free ops.

    DARTS+ stops at two or more skip connections in the normal cell; in [001] the parameter-free
    ops are roll, noise and zero (``state.parameter_free``). The count is over the whole flattened
    genotype of ``probe.genotype(alpha)`` (our choice: our cells are not shared, so every position
    counts). threshold = 2 from M26; ``min_epoch`` = 0 (our choice; raise it to skip warm-up).
    Where the op set has a skip connection (the DARTS cell space) the rule is M26's own: skip
    connections in the normal cell (the space's ``flatten``), at least ``skip_threshold`` (2).
    """

    name = "parameter-free-count"

    def __init__(self, threshold: int = 2, min_epoch: int = 0, skip_threshold: int = 2) -> None:
        self.threshold, self.min_epoch, self.skip_threshold = int(threshold), int(min_epoch), int(skip_threshold)
        self.reset()

    def reset(self) -> None:
        self.signal: list[float] = []
        self.rollback_alpha: torch.Tensor | None = None

    def observe(self, epoch, alpha, state, probe) -> bool:
        names = state.space.flatten(probe.genotype(alpha))
        if SKIP_OP in state.ops:
            count, limit = sum(name == SKIP_OP for name in names), self.skip_threshold
        else:
            free = _parameter_free(state)
            free_ops = {op for op, f in zip(state.ops, free.tolist()) if f}
            count, limit = sum(name in free_ops for name in names), self.threshold
        self.signal.append(float(count))
        return epoch >= self.min_epoch and count >= limit


class RankStabilityStopping:
    """DARTS+ criterion 2 (M26): stop when alpha's ranking of the learnable ops has settled.

    At every position the learnable (not parameter-free) ops are ranked by alpha (descending,
    ties by op order; the relaxations are monotone, so this is also the ranking of their
    probabilities). The search stops at the first epoch whose ranking equals that of each of the
    previous ``window`` epochs, i.e. the ranking did not change for ``window`` consecutive epochs
    (M26: "e.g. 10"). ``signal``: the current run of unchanged epochs.
    """

    name = "rank-stability"

    def __init__(self, window: int = 10) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        self.signal: list[float] = []
        self.rollback_alpha: torch.Tensor | None = None
        self._previous: torch.Tensor | None = None
        self._streak = 0

    def observe(self, epoch, alpha, state, probe) -> bool:
        learnable = ~_parameter_free(state)
        if not bool(learnable.any()):
            raise ValueError("RankStabilityStopping needs at least one learnable op")
        a = alpha.detach().cpu()[:, learnable]
        ranking = torch.argsort(-a, dim=-1, stable=True)
        if self._previous is not None and torch.equal(ranking, self._previous):
            self._streak += 1
        else:
            self._streak = 0
        self._previous = ranking
        self.signal.append(float(self._streak))
        return self._streak >= self.window


class DistanceStabilityStopping:
    """DARTOpti (M46): stop when the architecture distance M has been stable for ``patience`` epochs.

    Each epoch the genotype g_t = ``probe.genotype(alpha)`` is compared with DARTOpti's distance M
    (``harness.spaces.distance``). reference="previous": the tracked change is M(g_{t-1}, g_t);
    reference="initial": M(g_0, g_t) is tracked (the thesis's Fig. 4.6 curve) and its change is
    |M(g_0, g_t) - M(g_0, g_{t-1})|. An epoch is stable when that change is <= ``tolerance``
    (M46: not stated; our choice 0.0, i.e. an unchanged architecture). Only epochs >= ``start_epoch``
    count; the search stops after ``patience`` consecutive stable ones (M46: 5 epochs from epoch 10).
    ``signal``: M(g_{t-1}, g_t) (resp. M(g_0, g_t)); 0.0 at the first observed epoch.
    """

    name = "distance-stability"

    def __init__(
        self,
        patience: int = 5,
        start_epoch: int = 10,
        tolerance: float = 0.0,
        reference: str = "previous",
        op_weights=None,
    ) -> None:
        if reference not in ("previous", "initial"):
            raise ValueError(f"reference must be 'previous' or 'initial', got {reference!r}")
        self.patience, self.start_epoch, self.tolerance = int(patience), int(start_epoch), float(tolerance)
        self.reference, self.op_weights = reference, op_weights
        self.reset()

    def reset(self) -> None:
        self.signal: list[float] = []
        self.rollback_alpha: torch.Tensor | None = None
        self._first = None
        self._previous = None
        self._streak = 0

    def observe(self, epoch, alpha, state, probe) -> bool:
        genotype = probe.genotype(alpha)
        if self._previous is None:
            self._first = genotype
            value, change = 0.0, None
        elif self.reference == "previous":
            value = architecture_distance(self._previous, genotype, state.ops, self.op_weights)
            change = value
        else:
            value = architecture_distance(self._first, genotype, state.ops, self.op_weights)
            change = abs(value - self.signal[-1])
        self._previous = genotype
        self.signal.append(value)
        stable = change is not None and epoch >= self.start_epoch and change <= self.tolerance
        self._streak = self._streak + 1 if stable else 0
        return self._streak >= self.patience


class TrialStopping:
    """One copy of an early-stopping rule per trial of a search run (a rule keeps one trial's
    history); the first copy is the preset's own instance, so a trial alone is unchanged.

    A rule that ``needs_eigenvalue`` (DARTS-ES) gets every live trial's eigenvalue from
    ``eigenvalues(alphas, generators)``, one computation for the batch, with each trial's power
    iteration started from its own stream as alone; at K = 1 the rule measures its own."""

    def __init__(self, rule, k: int) -> None:
        rule.reset()
        self.rules = [rule] + [copy.deepcopy(rule) for _ in range(k - 1)]
        self.stopped_at: list[int | None] = [None] * k

    def observe(
        self, epoch: int, alphas: torch.Tensor, states: list, probe, live: list[int],
        eigenvalues: Callable[[torch.Tensor, list], list[float]] | None = None,
    ) -> list[int]:
        """Observe the ``live`` trials' alphas (K, ...) after ``epoch``; the trials that stop now."""
        measured = None
        if len(self.rules) > 1 and getattr(self.rules[0], "needs_eigenvalue", False) and live:
            measured = eigenvalues(alphas, [s.generator for s in states])
        newly = []
        for t in live:
            extra = {} if measured is None else {"eigenvalue": measured[t]}
            if self.rules[t].observe(epoch, alphas[t], states[t], probe, **extra):
                self.stopped_at[t] = epoch
                newly.append(t)
        return newly

    def state(self) -> dict:
        return {"rules": [copy.deepcopy(vars(r)) for r in self.rules], "stopped_at": list(self.stopped_at)}

    def load(self, saved: dict) -> None:
        for rule, values in zip(self.rules, saved["rules"]):
            vars(rule).update(values)
        self.stopped_at = list(saved["stopped_at"])
