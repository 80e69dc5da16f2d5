"""Baselines of [001] Table 1: single-op networks (M07), Random (M05), Random search (M06)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.training import arch_metrics, retrain_and_score
from harness.tasks.metrics import METRICS


@dataclass
class SingleOp:
    """Every layer / edge the same benign op ("Learnable Grad. only", "Nets only")."""

    searches_alpha: ClassVar[bool] = False  # a capability: no architecture parameters to learn
    name: str
    op: str
    entry: str = "M07"
    spaces: tuple[str, ...] = ("sequential", "nonsequential")
    description: str = ""

    def search(self, ctx: MethodContext) -> SearchOutcome:
        return SearchOutcome(genotype=ctx.space.uniform_genotype(self.op))


@dataclass
class RandomArchitecture:
    """One architecture drawn uniformly from the op set, trained and evaluated."""

    searches_alpha: ClassVar[bool] = False  # a capability: no architecture parameters to learn
    name: str = "random"
    entry: str = "M05"
    spaces: tuple[str, ...] = ("sequential", "nonsequential", "darts-cell")
    description: str = "a single uniformly random architecture"

    def search(self, ctx: MethodContext) -> SearchOutcome:
        return SearchOutcome(genotype=ctx.space.random_genotype(ctx.ops, ctx.streams.generator("arch")))


@dataclass
class RandomSearch:
    """Best validation PSNR of ``k`` random architectures (k = 5 matches one DAS run's time
    budget in [001] Table 1: 5 x 0:35 = 2:55 vs 2:39-2:53)."""

    searches_alpha: ClassVar[bool] = False  # a capability: no architecture parameters to learn
    name: str = "random-search"
    entry: str = "M06"
    spaces: tuple[str, ...] = ("sequential", "nonsequential", "darts-cell")
    k: int = 5
    description: str = "best of k random architectures (equal time budget)"

    def search(self, ctx: MethodContext) -> SearchOutcome:
        candidates = []
        for genotype, child in random_candidates(ctx, self.k):
            try:
                scores = retrain_and_score(genotype, ctx, child)
            except TrialDiverged as exc:
                scores, reason = None, str(exc)
            else:
                reason = ""
            primary = ctx.task.primary
            score = scores["val"][primary] if scores else math.nan  # candidates compete on validation
            candidates.append({"genotype": genotype, "score": score, "failure_reason": reason, "scores": scores})
        best = best_candidate(candidates, ctx.task.primary)
        best_scores = best["scores"]
        for c in candidates:
            del c["scores"]  # the record keeps each candidate's validation score only
        finite = [c for c in candidates if math.isfinite(c["score"])]
        return SearchOutcome(
            genotype=best["genotype"],
            arch_score=best_scores["test"][ctx.task.primary],
            arch_metrics=arch_metrics(best_scores),
            extra={"candidates": candidates, "n_failed_candidates": self.k - len(finite)},
        )


def best_candidate(candidates: list[dict], metric: str) -> dict:
    """Random search's pick: the first best validation ``score`` in the metric's direction; raises
    TrialDiverged when every candidate failed (a trial alone and a batch share this rule)."""
    finite = [c for c in candidates if math.isfinite(c["score"])]
    if not finite:
        raise TrialDiverged(f"all {len(candidates)} random-search candidates failed: {candidates[0]['failure_reason']}")
    sign = 1.0 if METRICS.get(metric).direction == "max" else -1.0
    return max(finite, key=lambda c: sign * c["score"])


def random_candidates(ctx: MethodContext, k: int) -> list[tuple[object, object]]:
    """Random search's k (genotype, streams) pairs: candidate i draws from the trial's i-th child
    streams, so a trial alone and a batch train the same candidates."""
    pairs = []
    for i in range(k):
        child = ctx.streams.child(i)
        pairs.append((ctx.space.random_genotype(ctx.ops, child.generator("arch")), child))
    return pairs
