"""``harness.run_study``: a study from Python with the CLI's semantics (the CLI calls it too).

    import harness
    df = harness.run_study("studies/blur.yaml", out="results", trials=5, epochs=3)
    df = harness.run_study({"name": "mine", "rows": [...]}, executor="dask", scheduler="tcp://host:8786")

It resumes (trials already in the store are skipped), plans batches with the same automatic
engine as ``run_specs``, stores each trial as it finishes, writes the report at the end, and
returns the study's trials as a DataFrame (``harness.runner.load_trials``). ``callbacks`` (callables
or ``"module:function"`` strings) get every record as it is stored, and ``optuna_storage`` mirrors
the trials into Optuna for ``optuna-dashboard`` (docs/live_view.md). Errors are raised as
exceptions (``StudyConfigError``, ``StudyLocked``, ``StoreWriteError``, ``DaskSetupError``,
``ReportNotWritten``, ``CallbackError``); the
CLI turns them into messages and exit codes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.atomic import write_json_atomic
from harness.runner.callbacks import SafeCallbacks, TrialCallback, resolve_callbacks
from harness.runner.executor import EXECUTORS, run_specs
from harness.runner.spec import STATUS_FAILED
from harness.runner.store import TrialStore, shard_specs
from harness.runner.trial import batching_reason
from harness.study.config import StudyConfig, StudyConfigError, load_study, parse_study, row_warnings


class ReportNotWritten(RuntimeError):
    """The trials are stored but the report could not be written."""


@dataclasses.dataclass
class StudyRun:
    """A study resolved against its folder: what is stored and what is left to run."""

    study: StudyConfig
    folder: Path
    store: TrialStore
    specs: list  # this run's trials (a shard's part, or all)
    plan: list[str]  # per row, why its trials run one at a time ("" when batched)

    @property
    def trial_ids(self) -> set[str]:
        return {s.trial_id for s in self.specs}

    def todo(self, retry_failed: bool = False) -> list:
        done = self.store.finished_ids(retry_failed=retry_failed)
        return [s for s in self.specs if s.trial_id not in done]


def study_folder(out: str | os.PathLike, name: str) -> Path:
    """``<out>/<name>``; a path that is (or sits under) a file is refused before anything runs."""
    root = Path(out)
    for parent in (root, *root.parents):
        if parent.exists() and not parent.is_dir():
            raise StudyConfigError(f"--out {out}: {parent} is a file, not a folder")
    folder = root / name
    if folder.exists() and not folder.is_dir():
        raise StudyConfigError(f"--out {out}: {folder} is a file, not a study folder")
    return folder


def prepare(study, out: str | os.PathLike = "results", *, trials: int | None = None, epochs: int | None = None,
            workers: int | None = None, imports=(), shard: tuple[int, int] | None = None,
            batch_size: int | None = None, log=None) -> StudyRun:
    """Load and validate ``study`` (a file path or a parsed mapping) and look at its folder."""
    overrides = {k: v for k, v in (("trials", trials), ("epochs", epochs), ("workers", workers)) if v is not None}
    if isinstance(study, dict):
        if not study.get("name"):
            raise StudyConfigError("a study given as a mapping needs a 'name' (its results folder)")
        config = parse_study(study, f"<study {study['name']}>", overrides, imports)
    else:
        config = load_study(study, overrides, imports)
    folder = study_folder(out, config.name)
    store = TrialStore(folder, shard)
    specs = shard_specs(config.specs(), shard)
    return StudyRun(config, folder, store, specs, batching_plan(config, batch_size, log))


def batching_plan(study: StudyConfig, batch_size: int | None, log=None) -> list[str]:
    """Per row, why its trials run one at a time ("" when K seeds run as one computation)."""
    if batch_size == 1:
        return ["--batch-size 1"] * len(study.rows)
    plan = []
    for row in study.rows:
        reason = batching_reason(row.spec.trial(study.seed_offset))
        if reason and log:
            log(f"  one trial at a time for {row.spec.label}: {reason}")
        plan.append(reason)
    return plan


def execute(run: StudyRun, *, executor: str = "local", scheduler: str | None = None, batch_size: int | None = None,
            device: str | None = None, retry_failed: bool = False, report: bool = True, progress: bool = True,
            log=None, callbacks: Sequence[TrialCallback] = (), optuna_storage: str | None = None,
            reuse: Sequence[str | os.PathLike] = ()) -> list:
    """Run what is left of ``run`` under its lock; store every trial; write the report. ``callbacks``
    get each record once it is stored; ``optuna_storage`` (else the study file's ``mirror:``) gets
    the stored trials first, then each new one; ``reuse``: study folders whose finished trials of
    this run are copied instead of computed again (``TrialStore.adopt``)."""
    if executor not in EXECUTORS:
        raise StudyConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler and executor != "dask":
        raise StudyConfigError("a scheduler address needs the Dask executor (--executor dask)")
    log = log or (lambda message: None)
    with run.store.lock():
        for source in reuse:
            try:
                adopted = run.store.adopt(source, run.trial_ids)
            except FileNotFoundError as exc:
                raise StudyConfigError(f"--reuse {exc}") from None
            if adopted:
                log(f"  reused {adopted} finished trial(s) of {source} (same trial ids)")
        todo = run.todo(retry_failed)  # under the lock: another run may have stored trials since
        if any(not reason for reason in run.plan) and todo and not scheduler:
            from harness.spaces.kernels.fused_cnn import available, unavailable_reason

            # Build (or load) the fused kernel once here, before this machine's workers (loky or a
            # LocalCluster) start and each try to; a remote cluster's workers build their own.
            if not available():
                log(f"  batches without the compiled CNN kernel: {unavailable_reason()}")
        hooks = SafeCallbacks(_mirror(run, optuna_storage or run.study.optuna_storage, log) + list(callbacks), log)
        write_json_atomic(run.folder / "study.json", _study_record(run.study), default=str)
        start = time.perf_counter()
        results = run_specs(todo, workers=run.study.workers, store=run.store, progress=progress,
                            batch_size=batch_size, device=device, executor=executor, scheduler=scheduler,
                            plugins=run.study.plugins, callbacks=hooks or None)
        for line in hooks.summary():
            log(line)
        n_failed = sum(r.status == STATUS_FAILED for r in results)
        log(f"ran {len(results)} trials in {time.perf_counter() - start:.1f} s ({n_failed} failed)")
        for r in results:
            if r.status == STATUS_FAILED:
                log(f"  failed: {r.spec.row.label} seed {r.spec.seed}: {r.failure_reason}")
        _warn_foreign_trials(run, log)
        if not report:
            run.store.write_csv()
            return results
        from harness.report import write_report  # writes trials.csv along with the report

        try:
            paths = write_report(run.folder)
        except Exception as exc:  # the trials are safe; say so instead of a traceback
            if os.environ.get("HARNESS_DEBUG"):
                raise
            raise ReportNotWritten(
                f"the report could not be written ({type(exc).__name__}: {exc}); all trials are stored in "
                f"{run.store.folder}. Rebuild it with: python -m harness.report {run.folder}  (HARNESS_DEBUG=1 "
                "shows the traceback)") from exc
        log("wrote " + ", ".join(str(p) for p in paths.values()))
    return results


def run_study(study, out: str | os.PathLike = "results", *, executor: str = "local", scheduler: str | None = None,
              workers: int | None = None, trials: int | None = None, epochs: int | None = None,
              batch_size: int | None = None, device: str = "auto", imports=(), shard: tuple[int, int] | None = None,
              retry_failed: bool = False, report: bool = True, progress: bool = True, verbose: bool = True,
              callbacks=(), optuna_storage: str | None = None, reuse=()):
    """Run (or resume) ``study`` (a YAML path or a mapping); return its trials as a DataFrame.

    ``workers``/``trials``/``epochs`` override the file; ``device`` is cpu, cuda, cuda:N or auto;
    ``imports`` are plugin modules or ``.py`` files; ``shard`` (i, N) runs that part only;
    ``callbacks`` are called with each stored record; ``optuna_storage`` is a journal file or a
    database URL to mirror the trials into (overrides the file's ``mirror:``); ``reuse`` are study
    folders whose finished trials of this study are copied, not recomputed."""
    log = log_stderr if verbose else None
    run = prepare(study, out, trials=trials, epochs=epochs, workers=workers, imports=imports, shard=shard,
                  batch_size=batch_size, log=log)
    hooks = resolve_callbacks(callbacks)
    for warning in row_warnings(run.study) if log else ():
        log(f"warning: {warning}")
    execute(run, executor=executor, scheduler=scheduler, batch_size=batch_size,
            device=None if device == "auto" else device, retry_failed=retry_failed, report=report,
            progress=progress, log=log, callbacks=hooks, optuna_storage=optuna_storage, reuse=reuse)
    frame = run.store.dataframe()
    wanted = {s.trial_id for s in run.study.specs()}
    return frame[frame["trial_id"].isin(wanted)].reset_index(drop=True) if len(frame) else frame


def log_stderr(message: str) -> None:
    """The CLI's and ``run_study``'s progress log."""
    print(message, file=sys.stderr)


def _mirror(run: StudyRun, url: str | None, log) -> list[TrialCallback]:
    """The Optuna mirror as a callback (none without a URL), holding the trials stored so far: a
    shard's own trials only, so shards that share a mirror never add each other's twice."""
    if not url:
        return []
    from harness.study.optuna_mirror import OptunaMirror, shown

    stored = run.store.records()
    if run.store.shard is not None:
        mine = run.trial_ids
        stored = [r for r in stored if r["trial_id"] in mine]
    log(f"mirroring trials into {shown(url)} ({len(stored)} stored so far; view: optuna-dashboard {shown(url)})")
    return [OptunaMirror(url, run.study.name, [row.spec for row in run.study.rows], stored, log)]


def _study_record(study: StudyConfig) -> dict:
    return {"config": dataclasses.asdict(study), "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _warn_foreign_trials(run: StudyRun, log) -> None:
    ids = {s.trial_id for s in run.study.specs()}
    foreign = [r for r in run.store.records() if r["trial_id"] not in ids]
    if foreign:
        log(f"note: {len(foreign)} stored trials in {run.store.folder} are not part of this run's definition "
            "(other rows, epochs or seeds); the report shows them as rows of their own. Use --out for a "
            "separate folder.")
