"""``python -m harness.study studies/blur.yaml [--trials N] [--epochs E] [--out DIR] [--workers W] [--batch-size K]``

Runs every trial of the study that is not in its trial store yet (so a killed study resumes
where it stopped), appending each result as it arrives, then writes trials.csv, the summary
tables, figures and the HTML report into ``<out>/<name>/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.runner.executor import run_specs
from harness.runner.spec import NO_VARIANT, STATUS_FAILED
from harness.runner.store import StoreWriteError, StudyLocked, TrialStore
from harness.runner.trial import batching_reason
from harness.study.config import (
    MAX_EPOCHS,
    MAX_TRIALS,
    MAX_WORKERS,
    StudyConfigError,
    load_study,
    row_warnings,
)
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
    return parser


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


def _study_folder(out: str, name: str) -> Path:
    """``<out>/<name>``; a path that is (or sits under) a file is refused before anything runs."""
    root = Path(out)
    for parent in (root, *root.parents):
        if parent.exists() and not parent.is_dir():
            raise StudyConfigError(f"--out {out}: {parent} is a file, not a folder")
    folder = root / name
    if folder.exists() and not folder.is_dir():
        raise StudyConfigError(f"--out {out}: {folder} is a file, not a study folder")
    return folder


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            return _error(f"--data-dir {args.data_dir}: no such folder", EXIT_BAD_INPUT)
        os.environ[DATA_DIR_ENV] = str(Path(args.data_dir).resolve())  # worker processes inherit it
    try:
        overrides = {k: getattr(args, k) for k in ("trials", "epochs", "workers") if getattr(args, k) is not None}
        study = load_study(args.study, overrides)
        folder = _study_folder(args.out, study.name)
    except StudyConfigError as exc:
        return _error(str(exc), EXIT_BAD_INPUT)
    store = TrialStore(folder)
    specs = study.specs()
    done = store.finished_ids(retry_failed=args.retry_failed)
    todo = [s for s in specs if s.trial_id not in done]
    print(
        f"study {study.name}: {len(study.rows)} rows x {study.trials} trials, {study.epochs} epochs -> {folder}/\n"
        f"  {len(specs) - len(todo)} already stored, {len(todo)} to run on {study.workers} worker(s)",
        file=sys.stderr,
    )
    if store.damage_note():
        print(f"note: {store.damage_note()}", file=sys.stderr)
    for warning in row_warnings(study):
        print(f"warning: {warning}", file=sys.stderr)
    plan = _batching_plan(study, args.batch_size)
    if args.dry_run:
        for row, reason in zip(study.rows, plan):
            r = row.spec
            variant = "" if r.variant == NO_VARIANT else f"  [{r.variant}]"
            how = "alone" if reason else "batched"
            print(f"  {r.dataset:13s} {r.space:14s} {r.op_set:5s} {r.method:14s} {r.hp_set}  "
                  f"x{row.trials}  [{how}]{variant}")
        return 0
    try:
        with store.lock():
            return _run(study, store, folder, specs, args, plan)
    except StudyLocked as exc:
        return _error(str(exc), EXIT_BUSY)
    except StoreWriteError as exc:
        return _error(str(exc), EXIT_IO)
    except OSError as exc:  # e.g. the folder cannot be created or the report not written
        return _error(f"{exc.strerror or exc} ({exc.filename or folder}); stored trials are intact", EXIT_IO)


def _run(study, store: TrialStore, folder: Path, specs, args, plan) -> int:
    # Re-read under the lock: another run may have stored trials since the first look.
    done = store.finished_ids(retry_failed=args.retry_failed)
    todo = [s for s in specs if s.trial_id not in done]
    if any(not reason for reason in plan) and todo:
        from harness.spaces.kernels.fused_cnn import available, unavailable_reason

        # Build (or load) the fused kernel once here, before the workers start and each try to.
        if not available():
            print(f"  batches without the compiled CNN kernel: {unavailable_reason()}", file=sys.stderr)
    write_text_atomic(folder / "study.json", json.dumps(_study_record(study), indent=2, default=str))
    start = time.perf_counter()
    try:
        results = run_specs(
            todo, workers=study.workers, store=store, progress=not args.quiet,
            batch_size=args.batch_size, device=None if args.device == "auto" else args.device,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are stored in {store.path}; run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    n_failed = sum(r.status == STATUS_FAILED for r in results)
    print(f"ran {len(results)} trials in {time.perf_counter() - start:.1f} s ({n_failed} failed)", file=sys.stderr)
    for r in results:
        if r.status == STATUS_FAILED:
            print(f"  failed: {r.spec.row.label} seed {r.spec.seed}: {r.failure_reason}", file=sys.stderr)
    _warn_foreign_trials(store, specs)
    if args.no_report:
        store.write_csv()
    else:
        from harness.report import write_report  # writes trials.csv along with the report

        try:
            paths = write_report(folder)
        except Exception as exc:  # the trials are safe; say so instead of a traceback
            if os.environ.get("HARNESS_DEBUG"):
                raise
            return _error(
                f"the report could not be written ({type(exc).__name__}: {exc}); all trials are stored in "
                f"{store.path}. Rebuild it with: python -m harness.report {folder}  (HARNESS_DEBUG=1 shows the "
                "traceback)", 1,
            )
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def _batching_plan(study, batch_size: int | None) -> list[str]:
    """Per row, why its trials run one at a time ("" when K seeds run as one computation); each
    reason is printed once."""
    if batch_size == 1:
        return ["--batch-size 1"] * len(study.rows)
    plan = []
    for row in study.rows:
        reason = batching_reason(row.spec.trial(study.seed_offset))
        if reason:
            print(f"  one trial at a time for {row.spec.label}: {reason}", file=sys.stderr)
        plan.append(reason)
    return plan


def _study_record(study) -> dict:
    return {"config": dataclasses.asdict(study), "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _warn_foreign_trials(store: TrialStore, specs) -> None:
    ids = {s.trial_id for s in specs}
    foreign = [r for r in store.records() if r["trial_id"] not in ids]
    if foreign:
        print(
            f"note: {len(foreign)} stored trials in {store.folder} are not part of this run's definition "
            "(other rows, epochs or seeds); the report shows them as rows of their own. Use --out for a "
            "separate folder.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
