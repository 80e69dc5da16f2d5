"""The optimizer interface, backend-neutral: budgets, evaluated runs and the tuning result.

A backend (hpbandster's BOHB in ``bohb``, SMAC3 in ``smac_backend``, Optuna in ``optuna_backend``)
implements ``Tuner.optimize`` and reports every evaluation as a ``RunRecord``; everything downstream
(the incumbent, ``best_hyperparameters.json``, the plots) reads only these types.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.tune.objective import Objective, budget_to_epochs, reported_score  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Budgets:
    """Hyperband budgets (training epochs): ``max_budget * eta**-k`` down to at least ``min_budget``."""

    min_budget: float
    max_budget: float
    eta: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.min_budget <= self.max_budget:
            raise ValueError(
                f"need 0 < min_budget <= max_budget, got {self.min_budget} and {self.max_budget}"
            )
        if self.eta < 2:
            raise ValueError(f"eta must be >= 2, got {self.eta}")

    @property
    def n_rungs(self) -> int:
        # The same (truncating) rule as hpbandster's BOHB, so both agree on the rungs.
        return -int(math.log(self.min_budget / self.max_budget) / math.log(self.eta)) + 1

    def rungs(self) -> list[float]:
        n = self.n_rungs
        return [float(self.max_budget * self.eta ** -(n - 1 - i)) for i in range(n)]

    def bracket(self, iteration: int) -> list[tuple[int, float]]:
        """(number of configurations, budget) per stage of hyperband iteration ``iteration``."""
        n = self.n_rungs
        s = n - 1 - (iteration % n)
        n0 = int(math.floor(n / (s + 1)) * self.eta**s)
        counts = [max(int(n0 * self.eta ** (-i)), 1) for i in range(s + 1)]
        return list(zip(counts, self.rungs()[-s - 1 :]))

    def n_evaluations(self, iterations: int, start: int = 0) -> int:
        return sum(c for i in range(start, start + iterations) for c, _ in self.bracket(i))

    def total_budget(self, iterations: int, start: int = 0) -> float:
        return sum(c * b for i in range(start, start + iterations) for c, b in self.bracket(i))


@dataclass
class RunRecord:
    """One evaluation of one configuration on one budget."""

    config_id: tuple
    config: dict
    budget: float
    loss: float | None  # None: the evaluation crashed without a result (e.g. a worker died)
    info: dict = field(default_factory=dict)
    started: float = math.nan
    finished: float = math.nan
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.loss is not None and self.info.get("status", "ok") == "ok"

    @property
    def score(self) -> float | None:
        return reported_score(self.loss, self.ok, self.info)


@dataclass
class TuneResult:
    """All evaluations of a tuning run (earlier, warm-start runs included) and its incumbent."""

    runs: list[RunRecord]
    budgets: list[float]
    incumbent: RunRecord | None = None

    @classmethod
    def from_runs(cls, runs: list[RunRecord], budgets: list[float]) -> TuneResult:
        return cls(runs=runs, budgets=budgets, incumbent=select_incumbent(runs))

    def runs_of(self, config_id: tuple) -> list[RunRecord]:
        return sorted((r for r in self.runs if r.config_id == config_id), key=lambda r: r.budget)


def select_incumbent(runs: list[RunRecord]) -> RunRecord | None:
    """The best successful evaluation on the largest budget that has one (first found on ties).

    Like hpbandster, only the largest budget counts: a low-budget score is a noisy proxy.
    """
    ok = [r for r in runs if r.ok]
    if not ok:
        return None
    top = max(r.budget for r in ok)
    candidates = sorted((r for r in ok if r.budget == top), key=lambda r: (r.finished, r.config_id))
    return min(candidates, key=lambda r: r.loss)


class Tuner(Protocol):
    """An optimizer backend: minimizes ``objective`` (loss = -score) over ``space``."""

    name: str

    def optimize(
        self, objective: Objective, space: Any, budgets: Budgets, iterations: int, seed: int
    ) -> TuneResult: ...


# Called by a backend in the main process after every evaluation (progress, logging).
RunCallback = Callable[[RunRecord], None]
