"""BOHB through hpbandster: name server, master, workers and the live logs.

The master (this process) runs hpbandster's BOHB; workers evaluate configurations with an
``Objective`` (the same trial code the study runner uses). Workers are a thread in this
process (one local worker: cheap, deterministic, lets tests inject an objective), local
processes (``python -m harness.tune.worker``), or processes on other machines that attach to
the Pyro4 name server (docs/tuning.md). hpbandster's live logs (``bohb_logs``) are appended to
across resumed runs, with iteration numbers continued, so ``logged_results_to_HBS_result`` on
the folder sees every evaluation; each evaluation's trial records go to the folder's
``trials.jsonl`` (written only here, in the master).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.runner.store import TrialStore
from harness.tune import hpbandster_compat as compat
from harness.tune.bohb_logs import (
    has_logs,
    load_previous_result,
    load_runs,
    logged_iterations,
    make_tune_logger_class,
)
from harness.tune.objective import FAILED_LOSS, Objective
from harness.tune.tuner import Budgets, RunCallback, TuneResult

# BOHB's defaults (Falkner et al. 2018); the paper changes none that it reports.
BOHB_DEFAULTS = {
    "min_points_in_model": None,
    "top_n_percent": 15,
    "num_samples": 64,
    "random_fraction": 1 / 3,
    "bandwidth_factor": 3,
    "min_bandwidth": 1e-3,
}
WORKER_START_TIMEOUT_S = 120.0


def hpbandster_logger(level: int = logging.ERROR) -> logging.Logger:
    """A quiet logger: hpbandster otherwise configures DEBUG logging on the root logger."""
    logger = logging.getLogger("harness.tune.hpbandster")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s hpbandster %(levelname)s: %(message)s", "%H:%M:%S")
        )
        logger.addHandler(handler)
    logger.propagate = False
    return logger


# ---------------------------------------------------------------------------------------------
# Master-side pieces


def _make_bohb_class():
    from hpbandster.optimizers import BOHB

    class ContinuedBOHB(BOHB):
        """BOHB whose hyperband bracket schedule continues after ``iteration_offset`` earlier
        iterations (a resumed run does not restart with the most aggressive bracket)."""

        iteration_offset = 0

        def get_next_iteration(self, iteration, iteration_kwargs=None):
            from hpbandster.optimizers.iterations import SuccessiveHalving

            s = self.max_SH_iter - 1 - ((iteration + self.iteration_offset) % self.max_SH_iter)
            n0 = int(np.floor(self.max_SH_iter / (s + 1)) * self.eta**s)
            ns = [max(int(n0 * (self.eta ** (-i))), 1) for i in range(s + 1)]
            return SuccessiveHalving(
                HPB_iter=iteration,
                num_configs=ns,
                budgets=self.budgets[(-s - 1) :],
                config_sampler=self.config_generator.get_config,
                **(iteration_kwargs or {}),
            )

    return ContinuedBOHB


def _make_worker_class():
    from hpbandster.core.worker import Worker

    class ObjectiveWorker(Worker):
        """An hpbandster worker that evaluates an ``Objective``; returns builtin types only."""

        def __init__(self, objective: Objective, failure_loss: float = FAILED_LOSS, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.objective = objective
            self.failure_loss = failure_loss

        def compute(self, config_id, config, budget, working_directory, **_: Any) -> dict:
            from harness.tune.runlog import evaluate_safely  # a finite loss keeps BOHB's model usable

            return evaluate_safely(self.objective, config, budget, self.failure_loss)

    return ObjectiveWorker


def make_worker(
    objective: Objective,
    run_id: str,
    nameserver: str,
    port: int,
    host: str | None = None,
    failure_loss: float = FAILED_LOSS,
    worker_id: str | None = None,
    logger: logging.Logger | None = None,
):
    """An ``ObjectiveWorker`` attached to the name server at ``nameserver:port``."""
    return _make_worker_class()(
        objective,
        failure_loss=failure_loss,
        run_id=run_id,
        nameserver=nameserver,
        nameserver_port=port,
        host=host,
        id=worker_id,
        logger=logger or hpbandster_logger(),
    )


def _quiet_pyro_thread_errors():
    """During shutdown, a job still running (after Ctrl-C) cannot report back; hide the resulting
    connection errors of hpbandster's worker threads. Returns the function that undoes this."""
    import Pyro4.errors

    previous = threading.excepthook

    def hook(args) -> None:
        if not issubclass(args.exc_type, Pyro4.errors.CommunicationError):
            previous(args)

    threading.excepthook = hook
    return lambda: setattr(threading, "excepthook", previous)


# ---------------------------------------------------------------------------------------------
# The tuner


class HpBandSterTuner:
    """BOHB (hpbandster) behind the ``Tuner`` interface.

    ``workers`` local workers: one runs as a thread in this process with ``objective``; more
    run as processes started with ``worker_command`` (which must build the same objective), or,
    with ``in_process``, as threads here that share ``objective`` (one whose evaluations run
    elsewhere, e.g. a ``dask_workers.DaskObjective``).
    ``remote_workers``: the run waits for that many extra workers to attach from elsewhere.
    ``warm_start``: feed the evaluations already logged in ``out_dir`` to BOHB's model and
    continue the iteration numbering and bracket schedule after them.
    """

    name = "hpbandster"

    def __init__(
        self,
        out_dir: str | os.PathLike,
        run_id: str = "harness",
        workers: int = 1,
        worker_command: Sequence[str] | None = None,
        remote_workers: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        warm_start: bool = False,
        bohb_options: dict | None = None,
        failure_loss: float = FAILED_LOSS,
        on_run: RunCallback | None = None,
        on_start: Callable[[str, int, int], None] | None = None,
        ping_interval: int = 2,
        log_level: int = logging.ERROR,
        in_process: bool = False,
    ) -> None:
        if workers < 1 and remote_workers < 1:
            raise ValueError("need at least one worker")
        if workers > 1 and not in_process and not worker_command:
            raise ValueError("more than one local worker needs a worker_command (worker processes)")
        unknown = sorted(set(bohb_options or {}) - set(BOHB_DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown BOHB option(s) {', '.join(unknown)}; known: {', '.join(BOHB_DEFAULTS)}"
            )
        self.out_dir = Path(out_dir)
        self.run_id = run_id
        self.workers, self.worker_command, self.remote_workers = (
            workers,
            list(worker_command or []),
            remote_workers,
        )
        self.host, self.port = host, port
        self.in_process = in_process or workers == 1
        self.warm_start = warm_start
        self.bohb_options = {**BOHB_DEFAULTS, **(bohb_options or {})}
        self.failure_loss = failure_loss
        self.on_run, self.on_start = on_run, on_start
        self.ping_interval = ping_interval
        self.logger = hpbandster_logger(log_level)
        self.processes: list[subprocess.Popen] = []
        self.errors: list[str] = []

    def optimize(
        self, objective: Objective, space: Any, budgets: Budgets, iterations: int, seed: int
    ) -> TuneResult:
        import hpbandster.core.nameserver as hpns

        self.out_dir.mkdir(parents=True, exist_ok=True)
        offset = logged_iterations(self.out_dir) if self.warm_start else 0
        if not self.warm_start and has_logs(self.out_dir):
            raise FileExistsError(
                f"{self.out_dir} already holds a tuning run; warm-start from it or use another folder"
            )
        has_previous = offset > 0 and bool(load_runs(self.out_dir))
        previous = load_previous_result(self.out_dir, self.failure_loss) if has_previous else None
        # hpbandster takes no seed: it samples with numpy's global generator and the space's own.
        # A resumed run gets a different (still deterministic) stream, so it does not repeat the
        # random configurations of the first session.
        stream = int(np.random.SeedSequence([seed, offset]).generate_state(1)[0]) if offset else seed
        np.random.seed(stream)
        space.seed(stream)
        result_logger = make_tune_logger_class()(self.out_dir, offset, TrialStore(self.out_dir), self.on_run)
        ns = hpns.NameServer(
            run_id=self.run_id, working_directory=str(self.out_dir), host=self.host, port=self.port
        )
        optimizer = None
        threads = []
        try:
            host, port = ns.start()
            self.nameserver = (host, port)
            optimizer = _make_bohb_class()(
                configspace=space,
                run_id=self.run_id,
                nameserver=host,
                nameserver_port=port,
                host=self.host,
                min_budget=budgets.min_budget,
                max_budget=budgets.max_budget,
                eta=budgets.eta,
                result_logger=result_logger,
                previous_result=previous,
                ping_interval=self.ping_interval,
                logger=self.logger,
                working_directory=str(self.out_dir),
                **self.bohb_options,
            )
            optimizer.iteration_offset = offset
            compat.builtin_budgets(optimizer)
            if not np.allclose(optimizer.budgets, budgets.rungs()):
                raise RuntimeError(f"hpbandster budgets {optimizer.budgets} differ from {budgets.rungs()}")
            if self.in_process:
                for i in range(self.workers):
                    worker_id = "local" if self.workers == 1 else f"local{i}"
                    threads.append(
                        make_worker(
                            objective,
                            self.run_id,
                            host,
                            port,
                            host=self.host,
                            failure_loss=self.failure_loss,
                            worker_id=worker_id,
                            logger=self.logger,
                        )
                    )
                    threads[-1].run(background=True)
            elif self.workers > 1:
                self._start_processes(host, port)
            if self.on_start is not None:
                self.on_start(host, port, offset)
            self._wait_for_workers(optimizer, self.workers + self.remote_workers)
            self._run(optimizer, iterations)
        finally:
            restore = _quiet_pyro_thread_errors()
            if optimizer is not None:
                optimizer.shutdown(shutdown_workers=True)
            deadline = time.monotonic() + 10
            for worker in threads:  # each unregisters from the name server on exit
                if worker.thread is not None:
                    worker.thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self._stop_processes()
            ns.shutdown()
            if sys.exc_info()[0] is None:  # after an error or Ctrl-C a job may still be running
                restore()
        self.errors = result_logger.errors
        return TuneResult.from_runs(load_runs(self.out_dir), budgets.rungs())

    # -- workers -------------------------------------------------------------------------------

    def _start_processes(self, host: str, port: int) -> None:
        log_dir = self.out_dir / "workers"
        log_dir.mkdir(exist_ok=True)
        for i in range(self.workers):
            argv = [
                *self.worker_command,
                "--nameserver",
                host,
                "--port",
                str(port),
                "--run-id",
                self.run_id,
                "--host",
                self.host,
                "--worker-id",
                f"local{i}",
            ]
            log = open(log_dir / f"worker-{i}.log", "w")
            self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def _dead_process_message(self) -> str | None:
        for i, p in enumerate(self.processes):
            if p.poll() is not None and p.returncode != 0:
                log = self.out_dir / "workers" / f"worker-{i}.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                return f"worker process {i} exited with status {p.returncode}; its log ({log}) ends:\n{tail}"
        return None

    def _wait_for_workers(self, optimizer, n: int) -> None:
        start = time.monotonic()
        announced = False
        while optimizer.dispatcher.number_of_workers() < n:
            message = self._dead_process_message()
            if message:
                raise RuntimeError(message)
            waited = time.monotonic() - start
            if not self.remote_workers and waited > WORKER_START_TIMEOUT_S:
                raise RuntimeError(
                    f"only {optimizer.dispatcher.number_of_workers()} of {n} local workers "
                    f"registered within {WORKER_START_TIMEOUT_S:.0f} s"
                )
            if self.remote_workers and not announced and waited > 5:
                print(
                    f"waiting for workers: {optimizer.dispatcher.number_of_workers()} of {n} attached",
                    file=sys.stderr,
                )
                announced = True
            optimizer.dispatcher.trigger_discover_worker()
            time.sleep(0.2)

    def _run(self, optimizer, iterations: int) -> None:
        """Run in a daemon thread and watch it: if every local worker process has died, no job
        can ever finish and hpbandster would wait forever, so fail instead."""
        failure: list[BaseException] = []

        def target() -> None:
            try:
                optimizer.run(n_iterations=iterations, min_n_workers=1)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
                failure.append(exc)

        thread = threading.Thread(target=target, name="hpbandster master", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(timeout=1.0)
            if (
                self.processes
                and not self.remote_workers
                and all(p.poll() is not None for p in self.processes)
            ):
                raise RuntimeError(self._dead_process_message() or "all worker processes exited")
        if failure:
            raise failure[0]

    def _stop_processes(self) -> None:
        deadline = time.monotonic() + 10
        for p in self.processes:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
