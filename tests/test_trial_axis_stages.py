"""P-DARTS on the trial axis (1D): each trial keeps its own best ops from stage to stage, an op a
trial dropped runs only for the trials that keep it (the noise op's draws stay each trial's own),
and every trial of a K = 3 batch ends as it ends alone."""

from __future__ import annotations

import torch
from test_batched import ALPHA_TOL, SCORE_TOL, spec

from harness.methods.progressive import ProgressiveSearch
from harness.runner import STATUS_OK
from harness.runner.trial import batching_reason, run_batch, run_trial


def spy_batch_masks(monkeypatch) -> list[torch.Tensor]:
    """The (K, positions, ops) op masks P-DARTS's stages give a batch of K > 1 trials (filled as
    they start): where two trials' masks differ, each kept its own ops."""
    masks = []
    real = ProgressiveSearch.start

    def spy(self, ctxs, space, epochs, op_mask=None, hooks=None):
        if len(ctxs) > 1 and op_mask is not None:
            masks.append(op_mask.clone())
        return real(self, ctxs, space, epochs, op_mask, hooks)

    monkeypatch.setattr(ProgressiveSearch, "start", spy)
    return masks


def test_p_darts_trials_in_a_batch_end_as_alone(monkeypatch):
    masks = spy_batch_masks(monkeypatch)
    specs = [spec("p-darts", seed=s, epochs=6) for s in (0, 1, 2)]  # 2 epochs per stage, 1 warm-up
    assert batching_reason(specs[0]) == ""
    batched = run_batch(specs, batched=True)
    # The batch's trials kept different ops: the subset path ran.
    assert masks and any(not torch.equal(m[0], m[t]) for m in masks for t in range(1, 3))
    for b, s in zip(batched, specs):
        a = run_trial(s)
        assert b.status == a.status == STATUS_OK, (b.failure_reason, a.failure_reason)
        assert b.extra["batch_size"] == 3
        assert b.extra["stages"] == a.extra["stages"] and b.extra["epochs_run"] == a.extra["epochs_run"] == 6
        assert b.genotype == a.genotype
        assert a.alpha_history[-1] != a.alpha_history[-2]  # alpha moved in the last stage
        torch.testing.assert_close(torch.tensor(b.final_alphas), torch.tensor(a.final_alphas), rtol=0, atol=ALPHA_TOL)
        assert abs(b.oneshot_score - a.oneshot_score) < SCORE_TOL
        assert abs(b.arch_score - a.arch_score) < SCORE_TOL
