"""Hyperparameter tuning of DAS training ([001] section 5.1, App. B Table 7): BOHB (hpbandster, the
paper's tuner), SMAC3's multi-fidelity facade or Optuna (TPE + Hyperband pruner), ``--backend``.

``python -m harness.tune studies/tune_blur.yaml`` runs it (see docs/tuning.md). The pieces:

* ``space``: the Table 7 search space (ConfigSpace) and per-method extensions.
* ``objective``: one-shot, architecture and robust (quantile over seeds) objectives, built on
  the study runner's trial code.
* ``tuner``: the backend-neutral interface (``Tuner``, ``Budgets``, ``RunRecord``, ``TuneResult``).
* ``bohb``: the hpbandster backend; ``hpbandster_compat`` keeps hpbandster 0.7.4 working with
  ConfigSpace 1.x and numpy 2.
* ``smac_backend``, ``optuna_backend``: the maintained backends, same budgets and outputs;
  ``runlog`` writes every backend's evaluations in one log format; ``pyro_hmac`` signs hpbandster's
  Pyro4 traffic.
* ``dask_workers``: ``--executor dask``: hpbandster worker threads here whose evaluations run as
  Dask tasks on a cluster.
"""

from harness.tune.objective import (
    FAILED_LOSS,
    OBJECTIVES,
    Evaluation,
    Objective,
    TrialObjective,
    TrialTask,
    aggregate,
)
from harness.tune.space import METHOD_SPACES, TABLE7, build_space, register_method_space, split_config
from harness.tune.tuner import Budgets, RunRecord, Tuner, TuneResult, select_incumbent

__all__ = [
    "FAILED_LOSS",
    "METHOD_SPACES",
    "OBJECTIVES",
    "TABLE7",
    "Budgets",
    "Evaluation",
    "Objective",
    "RunRecord",
    "TrialObjective",
    "TrialTask",
    "TuneResult",
    "Tuner",
    "aggregate",
    "build_space",
    "register_method_space",
    "select_incumbent",
    "split_config",
]
