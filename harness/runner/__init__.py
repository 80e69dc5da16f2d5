"""Trial runner: specs, the trial function, executors and the append-only trial store."""

from harness.runner.executor import run_specs
from harness.runner.spec import STATUS_FAILED, STATUS_OK, TrialResult, TrialSpec
from harness.runner.store import TrialStore, load_trials
from harness.runner.trial import run_batch, run_trial

__all__ = [
    "STATUS_FAILED",
    "STATUS_OK",
    "TrialResult",
    "TrialSpec",
    "TrialStore",
    "load_trials",
    "run_batch",
    "run_specs",
    "run_trial",
]
