"""``python -m harness.study studies/blur.yaml [--trials N] [--epochs E] [--out DIR] [--workers W] [--engine E]``

Runs every trial of the study that is not in its trial store yet (so a killed study resumes
where it stopped), appending each result as it arrives, then writes trials.csv, the summary
tables, figures and the HTML report into ``<out>/<name>/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from harness.runner.executor import run_specs
from harness.runner.spec import STATUS_FAILED, TrialSpec
from harness.runner.store import TrialStore
from harness.runner.trial import ENGINES, engine_for
from harness.study.config import StudyConfigError, load_study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.study", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study YAML file, e.g. studies/blur.yaml")
    parser.add_argument("--trials", type=int, help="trials (seeds) per row, overrides the file")
    parser.add_argument("--epochs", type=int, help="search and retraining epochs, overrides the file")
    parser.add_argument("--workers", type=int, help="worker processes (1 = in this process)")
    parser.add_argument("--out", default="results", help="results root folder (default: results/)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    parser.add_argument("--dry-run", action="store_true", help="validate and list what would run, run nothing")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--engine", choices=ENGINES, default="auto",
        help="auto (default): batched where the method supports it, else the loop; batched; loop",
    )
    parser.add_argument("--batch-size", type=int, help="seeds per batched computation (default: automatic)")
    return parser


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise StudyConfigError(f"{flag} must be >= 1, got {value}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for flag in ("trials", "epochs", "workers", "batch_size"):
            _positive(getattr(args, flag), f"--{flag.replace('_', '-')}")
        study = load_study(args.study)
        overrides = {k: getattr(args, k) for k in ("trials", "epochs", "workers") if getattr(args, k) is not None}
        if "trials" in overrides:
            study.rows = [dataclasses.replace(r, trials=overrides["trials"]) for r in study.rows]
        study = dataclasses.replace(study, **overrides)
    except StudyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.out) / study.name
    store = TrialStore(folder)
    specs = study.specs()
    done = store.finished_ids(retry_failed=args.retry_failed)
    todo = [s for s in specs if s.trial_id not in done]
    print(
        f"study {study.name}: {len(study.rows)} rows x {study.trials} trials, {study.epochs} epochs -> {folder}/\n"
        f"  {len(specs) - len(todo)} already stored, {len(todo)} to run on {study.workers} worker(s)",
        file=sys.stderr,
    )
    engines = _engine_plan(study, args.engine)
    if args.dry_run:
        for row, (engine, _) in zip(study.rows, engines):
            print(f"  {row.dataset:13s} {row.space:14s} {row.op_set:5s} {row.method:14s} {row.hp_set}  "
                  f"x{row.trials}  [{engine}]")
        return 0
    if any(kind == "batched" for kind, _ in engines):
        from harness.batched.fused_cnn import available, unavailable_reason

        # Build (or load) the fused kernel once here, before the workers start and each try to.
        if not available():
            print(f"  batched engine without the compiled kernel: {unavailable_reason()}", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps(_study_record(study), indent=2, default=str))
    start = time.perf_counter()
    try:
        results = run_specs(
            todo, workers=study.workers, store=store, progress=not args.quiet, engine=args.engine,
            batch_size=args.batch_size,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are stored in {store.path}; run the same command to resume",
              file=sys.stderr)
        return 130
    n_failed = sum(r.status == STATUS_FAILED for r in results)
    print(f"ran {len(results)} trials in {time.perf_counter() - start:.1f} s ({n_failed} failed)", file=sys.stderr)
    for r in results:
        if r.status == STATUS_FAILED:
            print(f"  failed: {r.spec.method}/{r.spec.op_set} seed {r.spec.seed}: {r.failure_reason}", file=sys.stderr)
    _warn_foreign_trials(store, specs)
    if args.no_report:
        store.write_csv()
    else:
        from harness.report import write_report  # writes trials.csv along with the report

        paths = write_report(folder)
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def _engine_plan(study, engine: str) -> list[tuple[str, str]]:
    """Which engine runs each row; rows that fall back to the loop say why (printed once per row)."""
    plan = []
    for row in study.rows:
        spec = TrialSpec.make(
            dataset=row.dataset, space=row.space, op_set=row.op_set, method=row.method, hp_set=row.hp_set,
            seed=study.seed_offset, epochs=study.epochs, hp_overrides=row.hp_overrides, options=row.options,
        )
        kind, reason = engine_for(spec, engine)
        if engine != "loop" and kind == "loop":
            print(f"  loop engine for {row.method}/{row.op_set}/{row.hp_set}: {reason}", file=sys.stderr)
        plan.append((kind, reason))
    return plan


def _study_record(study) -> dict:
    return {"config": dataclasses.asdict(study), "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _warn_foreign_trials(store: TrialStore, specs) -> None:
    ids = {s.trial_id for s in specs}
    foreign = [r for r in store.records() if r["trial_id"] not in ids]
    if foreign:
        print(
            f"note: {len(foreign)} stored trials in {store.folder} are not part of this run's definition "
            "(other trials/epochs settings); the report includes them. Use --out for a separate folder.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
