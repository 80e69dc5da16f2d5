"""``python -m harness.study studies/blur.yaml [--trials N] [--epochs E] [--out DIR] [--workers W] [--batch-size K]``
``[--executor local|dask] [--scheduler ADDRESS] [--import MODULE] [--shard I/N] [--device D]``
``[--optuna-storage URL] [--callback MODULE:FUNCTION]``

Runs every trial of the study that is not in its trial store yet (so a killed study resumes
where it stopped), appending each result as it arrives, then writes trials.csv, the summary
tables, figures and the HTML report into ``<out>/<name>/``. ``harness.run_study`` is the same
from Python (``harness.study.api``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.runner.callbacks import CallbackError, resolve_callbacks
from harness.runner.dask_executor import DaskSetupError
from harness.runner.executor import EXECUTORS
from harness.runner.spec import NO_VARIANT
from harness.runner.store import StoreWriteError, StudyLocked, parse_shard
from harness.study.api import ReportNotWritten, execute, log_stderr, prepare
from harness.study.config import MAX_EPOCHS, MAX_TRIALS, MAX_WORKERS, StudyConfigError, row_warnings
from harness.tasks.classification import DATA_DIR_ENV


def bounded_int(low: int, high: int):
    """An argparse type: an integer in [low, high] (argparse reports a bad value by its flag, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.study", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study YAML file, e.g. studies/blur.yaml")
    parser.add_argument("--trials", type=bounded_int(1, MAX_TRIALS), help="trials (seeds) per row, overrides the file")
    parser.add_argument(
        "--epochs", type=bounded_int(1, MAX_EPOCHS), help="search and retraining epochs, overrides the file"
    )
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), help="worker processes (1 = in this process)")
    parser.add_argument("--out", default="results", help="results root folder (default: results/)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    parser.add_argument("--dry-run", action="store_true", help="validate and list what would run, run nothing")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--batch-size", type=bounded_int(1, 4096),
        help="seeds of a row computed together (default: automatic; 1: every trial alone)",
    )
    parser.add_argument("--device", type=device_name, default="auto",
                        help="cpu, cuda, cuda:N or auto (default: a GPU when present)")
    parser.add_argument("--data-dir", help=f"folder with the image data sets (default: ${DATA_DIR_ENV} or data/)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: this process or --workers processes (default); dask: a Dask cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address, e.g. tcp://host:8786 (default with --executor dask: a "
                             "LocalCluster of --workers processes)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="plugin module or .py file that registers methods, tasks or spaces (repeatable)")
    parser.add_argument("--shard", type=shard_arg, metavar="I/N",
                        help="run shard I of N (1 <= I <= N) of the trials, into its own store file "
                             "(job arrays: --shard $SLURM_ARRAY_TASK_ID/N with --array=1-N)")
    parser.add_argument("--optuna-storage", metavar="URL",
                        help="mirror every stored trial into this Optuna storage (a journal file or a database URL "
                             "such as sqlite:///optuna.db) for a live view: optuna-dashboard URL (docs/live_view.md)")
    parser.add_argument("--callback", dest="callbacks", action="append", default=[], metavar="MODULE:FUNCTION",
                        help="call FUNCTION(record) with every trial record once it is stored, e.g. to log it to "
                             "MLflow (repeatable; docs/live_view.md)")
    parser.add_argument("--reuse", action="append", default=[], metavar="FOLDER",
                        help="copy the finished trials of another study folder that this study also defines "
                             "(same trial ids) instead of computing them again (repeatable)")
    return parser


def shard_arg(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def device_name(text: str) -> str:
    """An argparse type: a device this machine has (checked now, not after an hour of trials)."""
    import torch

    if text == "auto" or text == "cpu":
        return text
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or auto, got {text!r}") from None
    if device.type != "cuda":
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or auto, got {text!r}")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: this machine has no CUDA GPU (use --device cpu)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} GPU(s)")
    return text


# Exit codes: 2 bad input (study file, arguments), 75 the folder is in use (EX_TEMPFAIL: try again
# later), 74 the store cannot be written (EX_IOERR, e.g. a full disk), 130 interrupted.
EXIT_BAD_INPUT, EXIT_IO, EXIT_BUSY, EXIT_INTERRUPTED = 2, 74, 75, 130


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            return _error(f"--data-dir {args.data_dir}: no such folder", EXIT_BAD_INPUT)
        os.environ[DATA_DIR_ENV] = str(Path(args.data_dir).resolve())  # worker processes inherit it
    if args.scheduler and args.executor != "dask":
        return _error("--scheduler needs --executor dask", EXIT_BAD_INPUT)
    log = log_stderr
    try:
        run = prepare(args.study, args.out, trials=args.trials, epochs=args.epochs, workers=args.workers,
                      imports=args.imports, shard=args.shard, batch_size=args.batch_size, log=log)
        callbacks = resolve_callbacks(args.callbacks)
    except (StudyConfigError, CallbackError) as exc:
        return _error(str(exc), EXIT_BAD_INPUT)
    study, todo = run.study, run.todo(args.retry_failed)
    part = "" if args.shard is None else f" (shard {args.shard[0]}/{args.shard[1]}: {len(run.specs)} trials)"
    where = f"{study.workers} worker(s)" if args.executor == "local" else (
        f"the Dask cluster at {args.scheduler}" if args.scheduler else f"a local Dask cluster of {study.workers}")
    log(f"study {study.name}: {len(study.rows)} rows x {study.trials} trials, {study.epochs} epochs -> "
        f"{run.folder}/{part}\n  {len(run.specs) - len(todo)} already stored, {len(todo)} to run on {where}")
    if run.store.damage_note():
        log(f"note: {run.store.damage_note()}")
    for warning in row_warnings(study):
        log(f"warning: {warning}")
    if args.dry_run:
        for row, reason in zip(study.rows, run.plan):
            r = row.spec
            variant = "" if r.variant == NO_VARIANT else f"  [{r.variant}]"
            how = "alone" if reason else "batched"
            print(f"  {r.dataset:13s} {r.space:14s} {r.op_set:5s} {r.method:14s} {r.hp_set}  "
                  f"x{row.trials}  [{how}]{variant}")
        return 0
    try:
        execute(run, executor=args.executor, scheduler=args.scheduler, batch_size=args.batch_size,
                device=None if args.device == "auto" else args.device, retry_failed=args.retry_failed,
                report=not args.no_report, progress=not args.quiet, log=log, callbacks=callbacks,
                optuna_storage=args.optuna_storage, reuse=args.reuse)
    except KeyboardInterrupt:
        return _error(f"interrupted: finished trials are stored in {run.store.path}; run the same command to "
                      "resume", EXIT_INTERRUPTED)
    except (StudyConfigError, DaskSetupError) as exc:
        return _error(str(exc), EXIT_BAD_INPUT)
    except StudyLocked as exc:
        return _error(str(exc), EXIT_BUSY)
    except StoreWriteError as exc:
        return _error(str(exc), EXIT_IO)
    except ReportNotWritten as exc:
        return _error(str(exc), 1)
    except OSError as exc:  # e.g. the folder cannot be created or the report not written
        return _error(f"{exc.strerror or exc} ({exc.filename or run.folder}); stored trials are intact", EXIT_IO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
