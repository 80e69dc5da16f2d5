"""SMAC3's multi-fidelity facade (Hyperband + random forest) behind the ``Tuner`` interface.

SMAC takes the ConfigSpace space as it is. Its Hyperband rounds the number of configurations per
bracket differently from hpbandster (``ceil`` where hpbandster uses ``floor``), so the intensifier
here is SMAC's ``Hyperband`` with the bracket arithmetic of ``Budgets.bracket``: the same rungs,
the same brackets in the same order, and ``n_trials = Budgets.n_evaluations(iterations)``, i.e.
exactly the evaluations hpbandster would run. SMAC's own output (run history, intensifier state)
goes to ``<folder>/smac/``; the evaluations are logged like every backend's (``runlog.RunLog``).

Parallelism is SMAC's: ``workers > 1`` lets SMAC start a local Dask cluster, and ``dask_client``
(``--executor dask``) hands it a running one (``DaskParallelRunner``). In parallel, SMAC starts the
next bracket while a stage waits for its results, so the evaluations per budget can differ from
hpbandster's schedule; their number is still ``n_trials``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from harness.tune.objective import FAILED_LOSS, Objective
from harness.tune.runlog import RunLog, evaluate_safely, integer_eta
from harness.tune.tuner import Budgets, RunCallback, TuneResult


class SmacTarget:
    """SMAC's target function: module level so that it pickles to Dask workers. The ``seed`` SMAC
    passes is unused (the objective has its own trial seeds); returns (loss, info)."""

    def __init__(self, objective: Objective, failure_loss: float = FAILED_LOSS) -> None:
        self.objective, self.failure_loss = objective, failure_loss

    @property
    def __code__(self):  # SMAC fingerprints a target function by its code object
        return SmacTarget.__call__.__code__

    def __call__(self, config: Any, seed: int = 0, budget: float = 1.0) -> tuple[float, dict]:
        from harness.tune.dask_workers import where_this_runs

        result = evaluate_safely(self.objective, dict(config), budget, self.failure_loss)
        info = result["info"]
        if "worker" not in info:
            info["worker"] = where_this_runs()  # which Dask worker (if any), host and pid ran it
        return float(result["loss"]), info


def _hyperband_class(budgets: Budgets):
    from smac.intensifier.hyperband import Hyperband

    class BudgetsHyperband(Hyperband):
        """SMAC's Hyperband with ``budgets``' rungs and brackets (hpbandster's arithmetic)."""

        @staticmethod
        def _get_max_iterations(eta: int, max_budget: float, min_budget: float) -> int:
            return budgets.n_rungs - 1

        @staticmethod
        def _compute_configs_and_budgets_for_stages(
            eta: int, max_budget: float, max_iter: int, s_max: int | None = None
        ) -> tuple[list[float], list[int]]:
            # SMAC's bracket i has max_iter = s_max - i stages after the first, like iteration i here
            iteration = (max_iter if s_max is None else s_max) - max_iter
            stages = budgets.bracket(iteration)
            return [b for _, b in stages], [n for n, _ in stages]

    return BudgetsHyperband


def _make_callback(log: RunLog):
    from smac.callback import Callback

    class LogCallback(Callback):
        """Logs every finished trial (in the main process, also when trials run on Dask)."""

        def on_tell_end(self, smbo, info, value) -> None:
            additional = value.additional_info if isinstance(value.additional_info, dict) else {}
            loss = value.cost if isinstance(value.cost, (int, float)) else None
            ok = str(getattr(value.status, "name", value.status)) == "SUCCESS"
            result = {"loss": float(loss), "info": dict(additional)} if ok and loss is not None else None
            error = None if result else f"SMAC status {getattr(value.status, 'name', value.status)}: " + str(
                additional.get("error", "")
            )
            config_id = (0, 0, int(smbo.runhistory.get_config_id(info.config)))
            log.log(config_id, dict(info.config), float(info.budget), result,
                    started=float(value.starttime or time.time()), finished=float(value.endtime or time.time()),
                    error=error)
            additional.pop("records", None)  # logged to trials.jsonl; keep SMAC's run history small
            return None

    return LogCallback()


class SmacTuner:
    """SMAC3 ``MultiFidelityFacade`` behind the ``Tuner`` interface (see the module docstring)."""

    name = "smac"

    def __init__(
        self,
        out_dir: str | os.PathLike,
        workers: int = 1,
        dask_client: Any = None,
        failure_loss: float = FAILED_LOSS,
        on_run: RunCallback | None = None,
        log_level: int = logging.ERROR,
        run_name: str = "harness",
    ) -> None:
        if workers < 1:
            raise ValueError(f"need at least one worker, got {workers}")
        self.out_dir, self.workers, self.dask_client = Path(out_dir), workers, dask_client
        self.failure_loss, self.on_run, self.log_level, self.run_name = failure_loss, on_run, log_level, run_name

    def optimize(self, objective: Objective, space: Any, budgets: Budgets, iterations: int, seed: int) -> TuneResult:
        from smac import MultiFidelityFacade, Scenario

        eta = integer_eta(budgets.eta, self.name)
        log = RunLog(self.out_dir, self.on_run)
        n_trials = budgets.n_evaluations(iterations)
        if n_trials == 0:
            return TuneResult.from_runs([], budgets.rungs())
        scenario = Scenario(
            space,
            name=self.run_name,
            output_directory=self.out_dir / "smac",
            deterministic=True,
            n_trials=n_trials,
            min_budget=budgets.min_budget,
            max_budget=budgets.max_budget,
            seed=seed,
            n_workers=1 if self.dask_client is not None else self.workers,
        )
        intensifier = _hyperband_class(budgets)(scenario, eta=eta, incumbent_selection="highest_budget", seed=seed)
        # The first bracket's first stage is the random initial design (like BOHB before its model has data).
        # SMAC's default design (a quarter of n_trials) leaves the rest of that stage to samples drawn before
        # any result exists, which repeated a configuration in our tests; SMAC skips a repeat, and the
        # bracket had one evaluation less than hpbandster's.
        initial = MultiFidelityFacade.get_initial_design(
            scenario, n_configs=budgets.bracket(0)[0][0], max_ratio=1.0
        )
        facade = MultiFidelityFacade(
            scenario,
            SmacTarget(objective, self.failure_loss),
            initial_design=initial,
            intensifier=intensifier,
            callbacks=[_make_callback(log)],
            overwrite=True,
            logging_level=self.log_level,
            dask_client=self.dask_client,
        )
        facade.optimize()
        return TuneResult.from_runs(log.runs, budgets.rungs())
