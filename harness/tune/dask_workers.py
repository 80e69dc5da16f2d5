"""BOHB evaluations on a Dask cluster, with hpbandster's optimizer kept on the client.

``python -m harness.tune TUNE.yaml --executor dask [--scheduler ADDRESS]``.

Why this shape: hpbandster hands jobs to workers that register with its Pyro4 name server, and
Dask hands tasks to its own workers; neither knows the other. Rather than teach one about the
other, the client runs N ordinary hpbandster worker *threads* (``HpBandSterTuner(in_process=True)``)
whose objective is a ``DaskObjective``: it submits the evaluation as one Dask task and waits for
its result. hpbandster sees N plain workers, so its optimizer, name server, dispatcher and result
logger stay in this process exactly as with local workers; N is the number of Dask worker threads,
so every thread of the cluster has one evaluation to run at a time. Only the objective, the
configuration and the budget go out and an ``Evaluation`` (with its trial records) comes back:
the cluster needs neither Pyro4's ports nor a shared file system, and only this process writes
the tuning folder. The cluster connection is the study runner's (``dask_executor.connect``).

Faults: Dask reruns a task whose worker died; once it has killed ``allowed-failures`` + 1
workers, ``.result()`` raises ``KilledWorker``, which ``DaskObjective`` re-raises as a
``DaskEvaluationError`` that says so. That, or any exception the objective raised on the worker
(re-raised here by Dask), becomes a failed evaluation with its reason and the finite
``failure_loss`` in ``ObjectiveWorker.compute``, exactly as for a local worker.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import uuid
from typing import Any

from harness.runner.dask_executor import DaskSetupError, connect, failure_reason
from harness.tune.objective import Evaluation, Objective

WAIT_FOR_WORKERS_S = 60.0  # a scheduler with no workers yet: how long to wait for the first


class DaskEvaluationError(RuntimeError):
    """An evaluation the cluster could not finish (its worker died on every attempt)."""


def where_this_runs() -> dict[str, Any]:
    """This process as an evaluation's ``info["worker"]``: the Dask worker's name and address,
    host and pid (so logs show where each evaluation ran)."""
    name = address = None
    try:
        from distributed import get_worker

        worker = get_worker()
        name, address = str(worker.name), str(worker.address)
    except (ImportError, ValueError):  # not inside a Dask task
        pass
    return {
        "executor": "dask",
        "dask_worker": name,
        "address": address,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def evaluate_on_worker(objective: Objective, config: dict, budget: float) -> Evaluation:
    """The Dask task: one evaluation in a Dask worker process, tagged with where it ran."""
    evaluation = objective(config, budget)
    return dataclasses.replace(evaluation, info={**evaluation.info, "worker": where_this_runs()})


class DaskObjective:
    """An ``Objective`` that runs ``objective`` on the cluster: submit, then wait for the result.

    Called concurrently from hpbandster's worker threads (``distributed.Client`` is thread-safe).
    ``objective`` must pickle; the tuning objective (``TrialObjective``) does: a frozen task
    description, seeds and a module-level trial function.
    """

    def __init__(self, client: Any, objective: Objective) -> None:
        self.client, self.objective = client, objective
        self._pending: set = set()
        self._lock = threading.Lock()

    def __call__(self, config: dict, budget: float) -> Evaluation:
        from distributed import KilledWorker

        key = f"harness-tune-{float(budget):g}ep-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(evaluate_on_worker, self.objective, config, float(budget), key=key, pure=False)
        with self._lock:
            self._pending.add(future)
        try:
            return future.result()
        except KilledWorker as exc:
            raise DaskEvaluationError(failure_reason(exc)) from None
        finally:
            with self._lock:
                self._pending.discard(future)

    def cancel(self) -> None:
        """Cancel the evaluations still running (after Ctrl-C or an error)."""
        with self._lock:
            pending = list(self._pending)
        if pending:
            self.client.cancel(pending)


class DaskCluster:
    """The client's connection to the cluster: a scheduler at ``scheduler``, or (None) a
    ``LocalCluster`` of ``workers`` single-threaded processes. Raises ``DaskSetupError`` if there is
    no scheduler at the address or no worker joins within ``wait_s`` seconds."""

    def __init__(self, scheduler: str | None, workers: int, wait_s: float = WAIT_FOR_WORKERS_S) -> None:
        self.scheduler = scheduler
        self.client, self.cluster = connect(scheduler, workers, None)
        self.objectives: list[DaskObjective] = []
        try:
            self.client.wait_for_workers(1, timeout=wait_s)
        except TimeoutError:
            self.close()
            raise DaskSetupError(
                f"the Dask scheduler at {scheduler} has no workers (none joined within {wait_s:.0f} s); start some "
                f"with `dask worker {scheduler} --nthreads 1`"
            ) from None

    def threads(self, limit: int | None = None) -> int:
        """Evaluation threads to run: the cluster's worker threads, or ``limit`` if smaller."""
        n = sum(self.client.nthreads().values())
        return max(1, min(n, limit) if limit else n)

    def objective(self, objective: Objective) -> DaskObjective:
        wrapped = DaskObjective(self.client, objective)
        self.objectives.append(wrapped)
        return wrapped

    def describe(self) -> str:
        where = f"the Dask cluster at {self.scheduler}" if self.scheduler else "a local Dask cluster"
        n_workers = len(self.client.nthreads())
        link = self.client.dashboard_link
        return f"{where}: {n_workers} worker(s), {self.threads()} thread(s)" + (f"; dashboard {link}" if link else "")

    def close(self) -> None:
        for objective in self.objectives:
            objective.cancel()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
