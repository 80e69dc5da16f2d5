"""``python -m harness.tune T.yaml --backend smac|optuna``: the maintained backends on the command line.

Both log like hpbandster (``runlog.RunLog``), so the summary (``best_hyperparameters.json``,
``runs.csv``, plots) is written by the same ``finish`` from the same logs. Where evaluations run:

* smac: one at a time here; ``--workers N`` (N > 1): SMAC's own local Dask cluster of N processes;
  ``--executor dask [--scheduler ADDR]``: SMAC's ``DaskParallelRunner`` on our Dask client.
* optuna: one at a time here; ``--workers N`` (N > 1) or ``--executor dask``: N Optuna threads,
  each running its evaluation as a Dask task (``dask_workers.DaskObjective``) on a local cluster
  or the one at ``--scheduler``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.runner.dask_executor import DaskSetupError
from harness.tune.tuner import TuneResult


def uses_dask(config: Any, args: Any) -> bool:
    return args.executor == "dask" or (config.backend == "optuna" and config.workers > 1)


def make_tuner(config: Any, folder: Path, args: Any, on_run: Callable, cluster: Any = None) -> tuple[Any, Any]:
    """(tuner, objective) for ``config.backend``; ``cluster``: a ``dask_workers.DaskCluster`` or None."""
    objective = config.make_objective()
    if config.backend == "smac":
        from harness.tune.smac_backend import SmacTuner

        tuner = SmacTuner(
            folder, workers=config.workers, dask_client=cluster.client if cluster else None,
            failure_loss=config.failure_loss, on_run=on_run, run_name=config.name,
            log_level=logging.INFO if args.verbose else logging.ERROR,
        )
        return tuner, objective
    if config.backend == "optuna":
        from harness.tune.optuna_backend import OptunaTuner

        threads = cluster.threads(args.workers) if cluster else 1
        tuner = OptunaTuner(
            folder, workers=threads, failure_loss=config.failure_loss, on_run=on_run, run_name=config.name,
            log_level=logging.INFO if args.verbose else logging.WARNING,
        )
        return tuner, cluster.objective(objective) if cluster else objective
    raise ValueError(f"no command-line runner for backend {config.backend!r}")


def run_backend(config: Any, folder: Path, args: Any, todo: int, progress_class: type, finish: Callable) -> int:
    """Run ``todo`` iterations' worth of ``config.backend``, then write the summary with ``finish``."""
    from harness.tune.bohb_logs import load_runs

    budgets = config.budgets
    total = budgets.n_evaluations(todo) if config.backend == "smac" else None  # optuna: not known ahead
    progress = progress_class(total, config.max_budget, not args.quiet)
    start = time.perf_counter()
    status = 0
    try:
        if uses_dask(config, args):
            from harness.tune.dask_workers import DaskCluster

            with DaskCluster(args.scheduler, config.workers) as cluster:
                print(cluster.describe(), file=sys.stderr)
                tuner, objective = make_tuner(config, folder, args, progress, cluster)
                tuner.optimize(objective, config.make_space(), budgets, todo, config.seed)
        else:
            tuner, objective = make_tuner(config, folder, args, progress)
            tuner.optimize(objective, config.make_space(), budgets, todo, config.seed)
    except DaskSetupError:
        progress.close()
        raise
    except KeyboardInterrupt:
        progress.close()
        print(f"\ninterrupted: the evaluations so far are logged in {folder}/ (--resume is hpbandster's only)",
              file=sys.stderr)
        status = 130
    except (RuntimeError, OSError, ValueError) as exc:
        progress.close()
        print(f"error: {config.backend}: {exc}", file=sys.stderr)
        status = 1
    progress.close()
    print(f"tuning took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    result = TuneResult.from_runs(load_runs(folder), budgets.rungs())
    final = finish(config, folder, result) if result.runs else 1
    return status or final
