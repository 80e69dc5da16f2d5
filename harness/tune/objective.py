"""What a configuration is worth: objectives built on the study runner's trial code.

* ``oneshot``: the supernet's validation PSNR ([001] "BOHB-one-shot-...").
* ``architecture``: the retrained architecture's validation PSNR ([001] "BOHB-...").
* ``robust``: a quantile (default the median) of the architecture PSNR over k seeds, so a
  configuration is rewarded for working on most seeds rather than on one lucky seed.

``oneshot`` and ``architecture`` average over their seeds (one by default). The optimizer
minimizes ``loss = -score`` (``+score`` for a metric where lower is better:
``harness.tasks.metrics`` gives the direction). A failed or diverged evaluation gets the finite loss
``failure_loss`` (default ``FAILED_LOSS``), worse than any real PSNR, so the optimizer learns to
avoid the region instead of crashing on a NaN; for ``robust`` each failed seed counts as a score
of ``-failure_loss`` inside the quantile, so a configuration that fails on a few seeds can still
win if the quantile is above them.

Every trial run for an evaluation is returned as a trial store record, so the tuning folder's
``trials.jsonl`` has the same format as a study's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from harness.runner.spec import STATUS_FAILED, STATUS_OK, RowSpec, TrialResult, TrialSpec
from harness.tasks.metrics import find_metric
from harness.tune.hpbandster_compat import json_safe, to_builtin
from harness.tune.space import split_config

OBJECTIVES = ("oneshot", "architecture", "robust")
# Loss of a failed evaluation: a PSNR of -1000 dB, below anything a trained model scores.
FAILED_LOSS = 1000.0


def budget_to_epochs(budget: float) -> int:
    """Training epochs for a (possibly fractional) hyperband budget."""
    return max(1, int(round(float(budget))))


@dataclass
class Evaluation:
    """An objective's answer for one configuration and budget; ``info`` holds builtin types only."""

    loss: float
    status: str = STATUS_OK
    info: dict = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)  # trial store records of the trials run

    @property
    def score(self) -> float | None:
        return reported_score(self.loss, self.status == STATUS_OK, self.info)


def reported_score(loss: float | None, ok: bool, info: dict) -> float | None:
    """An evaluation's score in the metric's units: what the objective recorded in ``info``
    (``-loss`` for evaluations that did not record one); None unless it succeeded."""
    if not ok:
        return None
    return float(info["score"]) if info.get("score") is not None else -loss


class Objective(Protocol):
    def __call__(self, config: dict, budget: float) -> Evaluation: ...


def aggregate(
    scores: Sequence[float | None], kind: str, quantile: float = 0.5, failure_loss: float = FAILED_LOSS,
    direction: str = "max",
) -> tuple[float, str]:
    """(loss, status) of per-seed scores; ``None`` or non-finite marks a failed seed. A metric
    where lower is better (``direction="min"``) is negated first, so the loss is always "lower is
    better" and a ``robust`` quantile below the median always looks at the worse seeds."""
    finite = [s is not None and math.isfinite(s) for s in scores]
    if not scores:
        return failure_loss, STATUS_FAILED
    if direction == "min":
        scores = [-s if ok else s for s, ok in zip(scores, finite)]
    if kind == "robust":
        values = np.array([s if ok else -failure_loss for s, ok in zip(scores, finite)], dtype=float)
        score = float(np.quantile(values, quantile))
        if score <= -failure_loss:
            return failure_loss, STATUS_FAILED
        return min(-score, failure_loss), STATUS_OK
    if not all(finite):
        return failure_loss, STATUS_FAILED
    return min(-float(np.mean(scores)), failure_loss), STATUS_OK


@dataclass(frozen=True)
class TrialTask:
    """Everything of a trial except what the tuner chooses (hyperparameters, epochs) and the seed."""

    dataset: str
    space: str
    op_set: str
    method: str
    base_hp_set: str = "H1"
    hp_overrides: dict = field(default_factory=dict)  # fixed overrides, not tuned
    options: dict = field(default_factory=dict)  # option groups: problem, ops, space, method

    def spec(self, config: dict, epochs: int, seed: int) -> TrialSpec:
        hp, method_options = split_config(config)
        options = {g: dict(v) for g, v in self.options.items()}
        if method_options:
            options["method"] = {**options.get("method", {}), **method_options}
        row = RowSpec.make(
            dataset=self.dataset,
            space=self.space,
            op_set=self.op_set,
            method=self.method,
            hp_set=self.base_hp_set,
            epochs=int(epochs),
            hp_overrides={**self.hp_overrides, **hp},
            options=options,
        )
        return row.trial(seed)


def _run_batch(specs: list[TrialSpec]) -> list[TrialResult]:
    from harness.runner.trial import run_batch

    return run_batch(specs)


class TrialObjective:
    """Runs ``task`` with a configuration for ``budget`` epochs on each seed and scores it.

    ``run`` executes a batch of specs (default: the study runner's ``run_batch``, i.e.
    ``run_trial`` per spec); tests inject a fake.
    """

    def __init__(
        self,
        task: TrialTask,
        kind: str = "architecture",
        seeds: Sequence[int] = (0,),
        quantile: float = 0.5,
        failure_loss: float = FAILED_LOSS,
        run: Callable[[list[TrialSpec]], list[TrialResult]] | None = None,
        threads: int | None = 1,
    ) -> None:
        if kind not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {kind!r}")
        if not seeds:
            raise ValueError("need at least one seed")
        if not 0 <= quantile <= 1:
            raise ValueError(f"quantile must be in [0, 1], got {quantile}")
        self.task, self.kind, self.seeds = task, kind, [int(s) for s in seeds]
        self.quantile, self.failure_loss = float(quantile), float(failure_loss)
        self.run = run or _run_batch
        self.threads = threads

    def specs(self, config: dict, budget: float) -> list[TrialSpec]:
        epochs = budget_to_epochs(budget)
        return [self.task.spec(config, epochs, s) for s in self.seeds]

    def _score(self, result: TrialResult) -> float | None:
        if result.status != STATUS_OK:
            return None
        value = result.oneshot_score if self.kind == "oneshot" else result.arch_score
        return float(value) if value is not None and math.isfinite(value) else None

    def __call__(self, config: dict, budget: float) -> Evaluation:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        specs = self.specs(config, budget)
        results = self.run(specs)
        scores = [self._score(r) for r in results]
        metric = find_metric(results[0].metric if results else None)
        loss, status = aggregate(scores, self.kind, self.quantile, self.failure_loss, metric.direction)
        reasons = [
            r.failure_reason or f"non-finite {self.kind} score" for r, s in zip(results, scores) if s is None
        ]
        info = {
            "status": status,
            "objective": self.kind,
            "score": (-loss if metric.direction == "max" else loss) if status == STATUS_OK else None,
            "metric": metric.name,
            "epochs": specs[0].epochs,
            "seeds": self.seeds,
            "scores": scores,
            "oneshot_scores": [_finite(r.oneshot_score) for r in results],
            "arch_scores": [_finite(r.arch_score) for r in results],
            "trial_ids": [s.trial_id for s in specs],
            "n_failed": len(reasons),
            "failure_reasons": reasons,
            "runtime_s": time.perf_counter() - start,
        }
        return Evaluation(
            loss=loss,
            status=status,
            info=to_builtin(info),
            records=[json_safe(r.to_record()) for r in results],
        )


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
