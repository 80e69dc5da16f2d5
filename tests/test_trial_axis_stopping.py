"""Early stopping on the trial axis: in a batch each trial stops at the epoch it stops at alone,
keeps the weights and alpha it stopped with while its batch mates go on, and ends with the
outcome it has alone (epochs run, signal, genotype, alphas, one-shot score)."""

from __future__ import annotations

import pytest
import torch
from test_batched import ALPHA_TOL, SCORE_TOL, spec

from harness.runner import STATUS_OK
from harness.runner.trial import batching_reason, run_batch, run_trial

SEEDS = (0, 1, 5)


def _compare(method: str, options: dict, epochs: int) -> tuple[list, list]:
    specs = [spec(method, seed=s, epochs=epochs, options={"method": options}) for s in SEEDS]
    assert batching_reason(specs[0]) == ""
    batched = run_batch(specs, batched=True)
    alone = [run_trial(s) for s in specs]
    for b, a in zip(batched, alone):
        assert b.status == a.status == STATUS_OK, (b.failure_reason, a.failure_reason)
        assert b.extra["batch_size"] == len(SEEDS)
        assert (b.extra["epochs_run"], b.extra["stopped_early"]) == (a.extra["epochs_run"], a.extra["stopped_early"])
        assert len(b.alpha_history) == len(a.alpha_history) == a.extra["epochs_run"] + 1
        assert b.genotype == a.genotype
        torch.testing.assert_close(torch.tensor(b.final_alphas), torch.tensor(a.final_alphas), rtol=0, atol=ALPHA_TOL)
        assert abs(b.oneshot_score - a.oneshot_score) < SCORE_TOL
        assert abs(b.arch_score - a.arch_score) < SCORE_TOL
    return batched, alone


def test_trials_stop_at_their_own_epoch_in_a_batch():
    """DARTS+ (parameter-free count, threshold 6): seeds 0, 1, 5 stop after 2, 5 (the end) and 1
    epochs; the first and last stop while a batch mate goes on, and keep what they stopped with."""
    batched, alone = _compare("darts-plus", {"criterion": "parameter-free", "max_parameter_free": 6}, epochs=5)
    epochs = [a.extra["epochs_run"] for a in alone]
    assert len(set(epochs)) == 3 and max(epochs) == 5, epochs  # the test must exercise frozen trials
    for b, a in zip(batched, alone):
        assert b.extra["early_stopping_signal"] == a.extra["early_stopping_signal"]


def test_a_batch_that_stops_together_ends_together():
    """DARTOpti (architecture unchanged for one epoch from epoch 2): every trial stops after 3 of 5."""
    batched, alone = _compare("dartopti", {"patience": 1, "start_epoch": 2}, epochs=5)
    assert [b.extra["epochs_run"] for b in batched] == [3] * len(SEEDS)
    for b, a in zip(batched, alone):
        assert b.extra["early_stopping_signal"] == a.extra["early_stopping_signal"]


def test_darts_es_eigenvalues_per_trial_match_the_trial_alone():
    """DARTS-ES measures every trial's dominant eigenvalue each epoch; alone exactly (dense Hessian),
    in a batch from central differences of exact gradients (within 1e-2, test_hessian.py)."""
    batched, alone = _compare("darts-es", {}, epochs=3)
    for b, a in zip(batched, alone):
        assert b.extra["early_stopping_signal"] == pytest.approx(a.extra["early_stopping_signal"], rel=2e-2)
        assert len(a.extra["early_stopping_signal"]) == 3
