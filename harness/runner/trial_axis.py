"""Trials of one row, different seeds, run as one computation (the engine's trial axis).

``run_trial`` per trial, at once: search (``method.search_trials``) or pick (Random, single op),
retrain every genotype as one computation (``harness.methods.retrain``), score; random search
retrains all k candidates of all trials at once and keeps each trial's best on validation.
Failures stay per trial; runtimes are the batch's wall time shared equally.
"""

from __future__ import annotations

import math
import time

from harness.methods import ComposedSearch, SearchOutcome
from harness.methods.baselines import RandomArchitecture, RandomSearch, SingleOp, best_candidate, random_candidates
from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.retrain import RetrainJob, retrain_trials
from harness.methods.training import arch_metrics
from harness.runner.spec import TrialResult
from harness.runner.trial import _take_outcome, fail_unfinished, finish_each, note_resumed, share_runtimes


def run_trial_axis(method, live: list[TrialResult], ctxs: list[MethodContext], start: float) -> None:
    search_s = 0.0
    try:
        if isinstance(method, RandomSearch):
            _random_search(method, live, ctxs)
        else:
            if isinstance(method, ComposedSearch):
                outcomes = method.search_trials(ctxs)
                search_s = time.perf_counter() - start
            elif isinstance(method, SingleOp):
                outcomes = [(SearchOutcome(genotype=c.space.uniform_genotype(method.op)), "") for c in ctxs]
            elif isinstance(method, RandomArchitecture):
                outcomes = [(SearchOutcome(genotype=c.space.random_genotype(c.ops, c.streams.generator("arch"))), "")
                            for c in ctxs]
            else:  # engine_for() only sends supported methods here
                raise TypeError(f"no batched implementation for {type(method).__name__}")
            jobs, owners = [], []
            for result, ctx, (outcome, failure) in zip(live, ctxs, outcomes):
                if failure:
                    result.failure_reason = failure
                    continue
                _take_outcome(result, outcome, ctx)
                jobs.append(RetrainJob(ctx, outcome.genotype, ctx.streams))
                owners.append(result)
            for result, scores in zip(owners, retrain_trials(jobs) if jobs else []):
                _take_scores(result, scores)
        finish_each(live, ctxs)
    except Exception as exc:  # noqa: BLE001
        fail_unfinished(live, exc)
    for result in live:
        note_resumed(result, ctxs[0])  # the batch shares one checkpoint
    share_runtimes(live, start, search_s)


def _take_scores(result: TrialResult, scores) -> None:
    if scores.failure:
        result.failure_reason = scores.failure
        return
    result.arch_metrics = arch_metrics({"val": scores.val, "test": scores.test})
    result.arch_score = scores.test[result.metric]


def _random_search(method: RandomSearch, live: list[TrialResult], ctxs: list[MethodContext]) -> None:
    """Every trial's k candidates in one batch (each candidate on its child streams, as in the loop)."""
    jobs = [RetrainJob(ctx, genotype, child) for ctx in ctxs for genotype, child in random_candidates(ctx, method.k)]
    scored = retrain_trials(jobs)
    for t, (result, ctx) in enumerate(zip(live, ctxs)):
        primary = ctx.task.primary
        candidates = []
        for i in range(method.k):
            job, scores = jobs[t * method.k + i], scored[t * method.k + i]
            score = scores.val[primary] if not scores.failure else math.nan  # candidates compete on validation
            candidates.append({"genotype": job.genotype, "score": score, "failure_reason": scores.failure,
                               "scores": scores})
        try:
            best = best_candidate(candidates, primary)
        except TrialDiverged as exc:
            result.failure_reason = str(exc)
            continue
        best_scores = best["scores"]
        for c in candidates:
            del c["scores"]
        _take_outcome(result, SearchOutcome(genotype=best["genotype"]), ctx)
        _take_scores(result, best_scores)
        n_failed = sum(not math.isfinite(c["score"]) for c in candidates)
        result.extra.update(candidates=candidates, n_failed_candidates=n_failed)
