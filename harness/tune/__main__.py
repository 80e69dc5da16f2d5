"""``python -m harness.tune studies/tune_blur.yaml [--iterations N] [--workers W] [--out DIR] ...``
``[--backend hpbandster|smac|optuna] [--executor local|dask] [--scheduler ADDRESS]``

Tunes the DAS training hyperparameters of [001] Table 7 with BOHB (hpbandster, as in the paper), SMAC3's
multi-fidelity facade or Optuna (TPE + Hyperband pruner) and writes into
``<out>/<name>/``: the live logs in hpbandster's format (configs.json, results.json), the trials of every
evaluation (trials.jsonl, trials.csv), runs.csv, best_hyperparameters.json (usable as
``hp_set: tuned:<out>/<name>`` in a study file) and diagnostic plots (PNG).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from harness.atomic import write_json_atomic
from harness.runner.dask_executor import DaskSetupError
from harness.runner.executor import EXECUTORS
from harness.tune import hpbandster_compat  # noqa: F401  (before anything is sent over Pyro4)
from harness.tune.backends_cli import uses_dask
from harness.tune.config import BACKENDS, TuneConfig, TuneConfigError, load_tune
from harness.tune.runlog import BackendUnavailable, integer_eta, require_backend
from harness.tune.tuner import Budgets, RunRecord, TuneResult


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness.tune",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("tune", help="tuning YAML file, e.g. studies/tune_blur.yaml")
    p.add_argument("--iterations", type=int, help="hyperband iterations in total (the paper: 128)")
    p.add_argument(
        "--workers",
        type=int,
        help="local workers (1: a thread here; more: processes; 0: remote workers only); with --executor dask: "
        "the LocalCluster's processes, or with --scheduler at most this many evaluations at a time",
    )
    p.add_argument("--min-budget", type=float, help="smallest budget (training epochs)")
    p.add_argument("--max-budget", type=float, help="largest budget (training epochs)")
    p.add_argument("--eta", type=float, help="hyperband's eta (>= 2)")
    p.add_argument("--seed", type=int, help="optimizer seed")
    p.add_argument(
        "--backend",
        help=f"optimizer: {', '.join(BACKENDS)} (default: the tuning file's backend:, else hpbandster); "
        "smac and optuna need an integer eta and cannot --resume",
    )
    p.add_argument("--out", default="results", help="results root folder (default: results/)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run logged in <out>/<name>/ (warm start) up to --iterations in total",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the name server and master bind to (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=0, help="name server port (default: any free port)")
    p.add_argument(
        "--remote-workers", type=int, default=0, help="also wait for this many workers from elsewhere"
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: hpbandster workers here (default); dask: every evaluation runs on a Dask cluster",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://host:8786 (default with --executor dask: a LocalCluster of "
        "--workers processes)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and show the plan, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="hpbandster's INFO log")
    return p


def apply_args(config: TuneConfig, args: argparse.Namespace) -> TuneConfig:
    """``config`` with the command-line overrides (validated)."""
    overrides = {}
    remote_only = args.remote_workers > 0 and args.executor != "dask"
    for key, minimum in (("iterations", 0), ("workers", 0 if remote_only else 1), ("seed", 0)):
        value = getattr(args, key)
        if value is not None:
            if value < minimum:
                raise TuneConfigError(f"--{key} must be >= {minimum}, got {value}")
            overrides[key] = value
    for key in ("min_budget", "max_budget", "eta"):
        value = getattr(args, key)
        if value is not None:
            if not math.isfinite(value) or value <= 0:
                raise TuneConfigError(f"--{key.replace('_', '-')} must be a positive number, got {value}")
            overrides[key] = float(value)
    if args.backend is not None:
        if args.backend not in BACKENDS:
            raise TuneConfigError(f"unknown --backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
        overrides["backend"] = args.backend
    if args.remote_workers < 0:
        raise TuneConfigError(f"--remote-workers must be >= 0, got {args.remote_workers}")
    if not 0 <= args.port < 65536:
        raise TuneConfigError(f"--port must be in 0..65535, got {args.port}")
    config = dataclasses.replace(config, **overrides)
    try:
        config.budgets  # noqa: B018  (validates min/max/eta)
        if config.backend != "hpbandster":
            integer_eta(config.eta, config.backend)
    except ValueError as exc:
        raise TuneConfigError(str(exc)) from None
    if config.backend != "hpbandster":
        pyro_only = [flag for flag, used in (
            ("--resume", args.resume), ("--remote-workers", args.remote_workers), ("--port", args.port),
            ("--host", args.host != "127.0.0.1")) if used]
        if pyro_only:
            raise TuneConfigError(
                f"{', '.join(pyro_only)}: only for --backend hpbandster (with {config.backend}, run evaluations "
                "elsewhere with --executor dask --scheduler ADDRESS)"
            )
    return config


def describe_plan(config: TuneConfig, done: int, todo: int, remote_workers: int = 0, where: str | None = None) -> str:
    b: Budgets = config.budgets
    from harness.tune.objective import budget_to_epochs

    rungs = ", ".join(f"{r:.4g} ({budget_to_epochs(r)} ep)" for r in b.rungs())
    t = config.task
    cap = " (optuna: at most that many trial-epochs)" if config.backend == "optuna" else ""
    return (
        f"tune {config.name} with {config.backend}: {t.dataset}/{t.space}/{t.op_set}/{t.method}, "
        f"objective {config.objective} "
        f"over seeds {config.trial_seeds}"
        + (f" (quantile {config.quantile})" if config.objective == "robust" else "")
        + f"\n  budgets (epochs): {rungs}; eta {b.eta:g}"
        + f"\n  iterations: {done} logged, {todo} to run = {b.n_evaluations(todo, done)} evaluations, "
        f"{b.total_budget(todo, done) * len(config.trial_seeds):.0f} trial-epochs{cap}; "
        + (where or f"{config.workers} local worker(s)")
        + (f" + {remote_workers} remote" if remote_workers else "")
    )


class Progress:
    """A progress bar over evaluations, with the best score on the largest budget so far."""

    def __init__(self, total: int, max_budget: float, enabled: bool) -> None:
        from harness.runner.executor import progress_bar

        self.bar = progress_bar(total, enabled, desc="evaluations", unit="eval")
        self.max_budget, self.best, self.best_loss, self.failed = max_budget, math.nan, math.inf, 0

    def __call__(self, run: RunRecord) -> None:
        if run.ok and run.budget >= self.max_budget - 1e-9 and run.loss < self.best_loss:
            self.best, self.best_loss = run.score, run.loss  # by loss: the metric may be lower-is-better
        if not run.ok:
            self.failed += 1
            reasons = "; ".join(run.info.get("failure_reasons", [])[:2]) or run.error or "no result"
            self.bar.write(f"failed: config {run.config_id} budget {run.budget:g}: {reasons[:300]}")
        best = f"{self.best:.2f}" if math.isfinite(self.best) else "-"
        self.bar.set_postfix_str(f"best@max={best} failed={self.failed} last={run.budget:g}ep", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def finish(config: TuneConfig, folder: Path, result: TuneResult) -> int:
    """Write the summary files and plots; report the incumbent."""
    from harness.runner.store import TrialStore
    from harness.tune.plots import write_plots
    from harness.tune.results import write_best, write_runs_csv

    if not result.runs:
        print("no evaluations finished; nothing to summarize", file=sys.stderr)
        return 1
    write_runs_csv(result, folder)
    store = TrialStore(folder)
    if store.records():
        store.write_csv()
    plots = write_plots(result.runs, folder)
    best = write_best(result, config, folder)
    n_failed = sum(not r.ok for r in result.runs)
    print(
        f"{len(result.runs)} evaluations ({n_failed} failed); plots: {', '.join(p.name for p in plots)}",
        file=sys.stderr,
    )
    if best is None:
        print(
            "error: no evaluation succeeded, so there is no incumbent and no best_hyperparameters.json",
            file=sys.stderr,
        )
        return 1
    inc = result.incumbent
    data = json.loads(best.read_text())
    where = "" if data["at_max_budget"] else " (no success on the largest budget yet)"
    print(
        f"incumbent {inc.config_id}: score {inc.score:.3f} at {inc.budget:g} epochs{where}\n"
        f"  {json.dumps(data['hyperparameters'])}\n"
        f"wrote {best}; use it in a study file as  hp_set: tuned:{folder}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.tune.bohb_logs import has_logs, load_runs, logged_iterations

    if args.scheduler and args.executor != "dask":
        print("error: --scheduler needs --executor dask", file=sys.stderr)
        return 2
    try:
        config = apply_args(load_tune(args.tune), args)
        require_backend(config.backend)
    except (TuneConfigError, BackendUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.out) / config.name
    if has_logs(folder) and not args.resume:
        print(
            f"error: {folder}/ already holds a tuning run ({len(load_runs(folder))} evaluations). "
            "Pass --resume to continue it (warm start), or choose another --out.",
            file=sys.stderr,
        )
        return 2
    done = logged_iterations(folder) if args.resume else 0
    todo = max(0, config.iterations - done)
    where = None
    if uses_dask(config, args):
        local = f"a local Dask cluster of {config.workers} process(es)"
        where = f"the Dask cluster at {args.scheduler}" if args.scheduler else local
    print(describe_plan(config, done, todo, args.remote_workers, where), file=sys.stderr)
    if args.dry_run:
        return 0
    from harness.runner.store import StudyLocked, TrialStore

    try:
        with TrialStore(folder).lock():  # one tuner per folder, like one study per folder
            return _tune(config, folder, args, done, todo)
    except StudyLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 75
    except DaskSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _tune(config: TuneConfig, folder: Path, args, done: int, todo: int) -> int:
    from harness.tune.bohb_logs import load_runs

    write_json_atomic(
        folder / "tune.json",
        {"config": config.to_dict(), "argv": sys.argv, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
        default=str,
    )
    if todo == 0:
        if not done:
            print("nothing to run (--iterations 0) and no earlier run to summarize", file=sys.stderr)
            return 0
        print("all iterations are logged already; rewriting the summary", file=sys.stderr)
        return finish(config, folder, TuneResult.from_runs(load_runs(folder), config.budgets.rungs()))
    if config.backend != "hpbandster":
        from harness.tune.backends_cli import run_backend

        return run_backend(config, folder, args, todo, Progress, finish)
    from harness.tune.pyro_hmac import master_key

    with master_key():  # every Pyro4 message is signed; local worker processes get the key from the environment
        return _tune_hpbandster(config, folder, args, done, todo)


def _tune_hpbandster(config: TuneConfig, folder: Path, args, done: int, todo: int) -> int:
    if args.executor == "dask":
        from harness.tune.dask_workers import DaskCluster

        with DaskCluster(args.scheduler, config.workers) as cluster:
            threads = cluster.threads(args.workers)
            print(f"{cluster.describe()}; {threads} evaluation(s) at a time", file=sys.stderr)
            return _optimize(config, folder, args, done, todo, cluster.objective(config.make_objective()), threads)
    return _optimize(config, folder, args, done, todo, config.make_objective(), config.workers)


def _optimize(config: TuneConfig, folder: Path, args, done: int, todo: int, objective, workers: int) -> int:
    """Run BOHB with ``workers`` workers evaluating ``objective``, then write the summary."""
    from harness.tune import pyro_hmac
    from harness.tune.bohb import HpBandSterTuner
    from harness.tune.bohb_logs import load_runs

    key = (pyro_hmac.active_key() or b"").decode()

    def announce(host: str, port: int, offset: int) -> None:
        if args.remote_workers or args.host != "127.0.0.1":
            print(
                f"name server at {host}:{port}; attach workers with\n"
                f"  python -m harness.tune.worker {args.tune} --nameserver {host} --port {port} "
                f"--run-id {config.name} --host <this worker's address> --hmac-key {key}\n"
                f"(or set {pyro_hmac.ENV_VAR}={key} instead of --hmac-key; keep the key private)",
                file=sys.stderr,
            )

    progress = Progress(config.budgets.n_evaluations(todo, done), config.max_budget, not args.quiet)
    tuner = HpBandSterTuner(
        folder,
        run_id=config.name,
        workers=workers,
        in_process=args.executor == "dask",
        worker_command=[sys.executable, "-m", "harness.tune.worker", str(args.tune)],
        remote_workers=args.remote_workers,
        host=args.host,
        port=args.port,
        warm_start=args.resume,
        bohb_options=config.bohb,
        failure_loss=config.failure_loss,
        on_run=progress,
        on_start=announce,
        log_level=20 if args.verbose else 40,
    )
    start = time.perf_counter()
    status = 0
    try:
        tuner.optimize(objective, config.make_space(), config.budgets, todo, config.seed)
    except KeyboardInterrupt:
        progress.close()
        print(
            f"\ninterrupted: evaluations so far are logged in {folder}/; run the same command with --resume "
            "to continue",
            file=sys.stderr,
        )
        status = 130
    except (RuntimeError, OSError) as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    progress.close()
    print(f"tuning took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    result = TuneResult.from_runs(load_runs(folder), config.budgets.rungs())
    final = finish(config, folder, result) if result.runs else 1
    return status or final


if __name__ == "__main__":
    sys.exit(main())
