"""Optuna (TPE sampler + Hyperband pruner) behind the ``Tuner`` interface.

An Optuna trial is one configuration climbing the rungs of ``Budgets``: at each rung it is
evaluated from scratch for that many epochs (as in hpbandster: no checkpoints are carried between
rungs), the loss is reported as the intermediate value at step ``eta**k``, and the pruner decides
whether it goes on. Optuna's pruner needs integer steps and an integer reduction factor, hence
``min_resource=1``, ``max_resource=eta**(n_rungs-1)`` and an integer ``eta``; its rung ``k`` is
then exactly ``Budgets.rungs()[k]``.

The budget: Optuna has no fixed bracket schedule, so the run stops once the next evaluation would
take the epochs spent past ``Budgets.total_budget(iterations)`` (what hpbandster spends in the
same number of iterations). The number of evaluations differs from hpbandster's; the epochs do not
exceed it.

Parallel evaluations are Optuna threads (``n_jobs``), each waiting for its evaluation; with
``--executor dask`` (or ``--workers N`` > 1) the objective is a ``dask_workers.DaskObjective``, so
the evaluations run on the Dask cluster and only Optuna's sampler and pruner stay here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from harness.tune.objective import FAILED_LOSS, Objective
from harness.tune.runlog import RunLog, evaluate_safely, integer_eta
from harness.tune.tuner import Budgets, RunCallback, TuneResult


def suggest(trial: Any, space: Any) -> dict:
    """A configuration of the ConfigSpace ``space`` drawn through Optuna's ``trial.suggest_*``."""
    import ConfigSpace as CS

    if list(space.conditions) or list(space.forbidden_clauses):
        raise ValueError("the optuna backend does not support conditions or forbidden clauses in the space")
    config: dict = {}
    for hp in space.values():
        if isinstance(hp, CS.Constant):
            config[hp.name] = hp.value
        elif isinstance(hp, CS.UniformFloatHyperparameter):
            config[hp.name] = trial.suggest_float(hp.name, hp.lower, hp.upper, log=hp.log)
        elif isinstance(hp, CS.UniformIntegerHyperparameter):
            config[hp.name] = trial.suggest_int(hp.name, hp.lower, hp.upper, log=hp.log)
        elif isinstance(hp, CS.CategoricalHyperparameter):
            config[hp.name] = trial.suggest_categorical(hp.name, list(hp.choices))
        elif isinstance(hp, CS.OrdinalHyperparameter):
            config[hp.name] = trial.suggest_categorical(hp.name, list(hp.sequence))
        else:
            raise ValueError(f"the optuna backend cannot sample {type(hp).__name__} {hp.name!r}")
    CS.Configuration(space, values=config).check_valid_configuration()
    return config


def _first_rung(pruner: Any, study: Any, trial: Any) -> int:
    """The rung where ``trial``'s Hyperband bracket first compares trials (lower rungs would be
    evaluated for nothing). Optuna has no public API for a trial's bracket; this reads the pruner's
    private one and falls back to the lowest rung if that changes."""
    get = getattr(pruner, "_get_bracket_id", None)
    try:
        return int(get(study, trial)) if get is not None else 0
    except Exception:  # noqa: BLE001  (a private API: never fail the run over it)
        return 0


class _Spending:
    """The epochs budget, shared by Optuna's threads."""

    def __init__(self, total: float) -> None:
        self.total, self.spent, self.lock = total, 0.0, threading.Lock()

    def reserve(self, budget: float) -> bool:
        with self.lock:
            if self.spent + budget > self.total + 1e-9:
                return False
            self.spent += budget
            return True


class OptunaTuner:
    """Optuna's ``TPESampler`` with a ``HyperbandPruner`` behind the ``Tuner`` interface."""

    name = "optuna"

    def __init__(
        self,
        out_dir: str | os.PathLike,
        workers: int = 1,
        failure_loss: float = FAILED_LOSS,
        on_run: RunCallback | None = None,
        log_level: int = logging.WARNING,
        run_name: str = "harness",
    ) -> None:
        if workers < 1:
            raise ValueError(f"need at least one worker, got {workers}")
        self.out_dir, self.workers, self.failure_loss = Path(out_dir), workers, failure_loss
        self.on_run, self.log_level, self.run_name = on_run, log_level, run_name

    def optimize(self, objective: Objective, space: Any, budgets: Budgets, iterations: int, seed: int) -> TuneResult:
        import optuna

        optuna.logging.set_verbosity(self.log_level)
        eta = integer_eta(budgets.eta, self.name)
        rungs = budgets.rungs()
        steps = [eta**k for k in range(len(rungs))]
        log = RunLog(self.out_dir, self.on_run)
        spending = _Spending(budgets.total_budget(iterations))
        if spending.total <= 0:
            return TuneResult.from_runs([], rungs)
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps[-1], reduction_factor=eta)
        study = optuna.create_study(
            study_name=self.run_name, direction="minimize", pruner=pruner,
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        init = getattr(pruner, "_try_initialization", None)  # before the threads: brackets known from trial 0
        if init is not None and not getattr(pruner, "_pruners", [None]):
            init(study)

        def run_trial(trial: Any) -> float:
            config = suggest(trial, space)
            loss = None
            for k in range(min(_first_rung(pruner, study, trial), len(rungs) - 1), len(rungs)):
                if not spending.reserve(rungs[k]):
                    study.stop()
                    raise optuna.TrialPruned("the tuning budget is spent")
                started = time.time()
                result = evaluate_safely(objective, config, rungs[k], self.failure_loss)
                log.log((0, 0, trial.number), config, rungs[k], result, started)
                loss = float(result["loss"])
                trial.report(loss, step=steps[k])
                if k < len(rungs) - 1 and trial.should_prune():
                    raise optuna.TrialPruned()
            return loss

        study.optimize(run_trial, n_jobs=self.workers, catch=())
        return TuneResult.from_runs(log.runs, rungs)
