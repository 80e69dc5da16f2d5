"""hpbandster's live logs ``configs.json`` / ``results.json``: reading them, warm starting from
them, and the master's result logger that appends to them across resumed runs.

Each line is one JSON array; a line cut short by a crash is skipped when reading, and the next
record starts on a line of its own.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from harness.runner.store import TrialStore
from harness.tune import hpbandster_compat as compat
from harness.tune.objective import FAILED_LOSS
from harness.tune.tuner import RunCallback, RunRecord

CONFIGS_FILE = "configs.json"
RESULTS_FILE = "results.json"


def has_logs(folder: str | os.PathLike) -> bool:
    return (Path(folder) / RESULTS_FILE).exists() and (Path(folder) / RESULTS_FILE).stat().st_size > 0


def _json_lines(path: Path) -> list:
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):  # a line cut short by a crash is skipped
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


def load_runs(folder: str | os.PathLike) -> list[RunRecord]:
    """Every evaluation in the folder's ``configs.json`` / ``results.json``."""
    folder = Path(folder)
    configs = {tuple(line[0]): line[1] for line in _json_lines(folder / CONFIGS_FILE)}
    runs = []
    for config_id, budget, stamps, result, exception in _json_lines(folder / RESULTS_FILE):
        cid = tuple(config_id)
        loss = None if result is None else result.get("loss")
        runs.append(
            RunRecord(
                config_id=cid,
                config=configs.get(cid, {}),
                budget=float(budget),
                loss=None if loss is None else float(loss),
                info=(result or {}).get("info") or {},
                started=float(stamps.get("started", np.nan)),
                finished=float(stamps.get("finished", np.nan)),
                error=exception,
            )
        )
    return runs


def logged_iterations(folder: str | os.PathLike) -> int:
    """Number of hyperband iterations in the logs (the last one may be partial)."""
    ids = [line[0][0] for line in _json_lines(Path(folder) / CONFIGS_FILE)]
    return max(ids) + 1 if ids else 0


def load_previous_result(folder: str | os.PathLike, failure_loss: float = FAILED_LOSS):
    """The logs as an hpbandster ``Result`` for warm starting.

    Lines cut short by a crash are dropped and crashed runs get ``failure_loss`` (hpbandster's
    loader and warm start fail on either).
    """
    import tempfile

    from hpbandster.core.result import logged_results_to_HBS_result

    with tempfile.TemporaryDirectory() as tmp:
        for name in (CONFIGS_FILE, RESULTS_FILE):
            lines = _json_lines(Path(folder) / name)
            (Path(tmp) / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
        result = logged_results_to_HBS_result(tmp)
    for datum in result.data.values():
        for budget, res in list(datum.results.items()):
            if res is None or res.get("loss") is None:
                datum.results[budget] = {"loss": failure_loss, "info": {"status": "failed", "crashed": True}}
    return result


def _end_with_newline(path: str) -> None:
    """After a crash mid-line, start the next record on a line of its own."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


def make_tune_logger_class():
    class TuneLogger(compat.NumpyJsonResultLogger):
        """Appends to the live logs with iteration ids continued after ``iteration_offset``,
        moves each evaluation's trial records into the trial store and reports the run.

        It runs inside hpbandster's callback thread, where an exception would hang the master
        silently, so it never raises; errors are printed.
        """

        def __init__(
            self,
            directory: str | os.PathLike,
            iteration_offset: int = 0,
            store: TrialStore | None = None,
            on_run: RunCallback | None = None,
        ) -> None:
            os.makedirs(directory, exist_ok=True)
            self.config_fn = os.path.join(directory, CONFIGS_FILE)
            self.results_fn = os.path.join(directory, RESULTS_FILE)
            for path in (self.config_fn, self.results_fn):
                _end_with_newline(path)
            self.config_ids: set = set()
            self.offset = iteration_offset
            self.store = store
            self.on_run = on_run
            self.errors: list[str] = []

        def _id(self, config_id) -> list:
            return [config_id[0] + self.offset, *config_id[1:]]

        def config_line(self, config_id, config, config_info) -> list:
            return [self._id(config_id), config, config_info]

        def result_line(self, job) -> list:
            return [self._id(job.id), job.kwargs["budget"], job.timestamps, job.result, job.exception]

        def new_config(self, config_id, config, config_info) -> None:
            try:
                super().new_config(config_id, config, config_info)
            except Exception:  # noqa: BLE001  (must not raise in hpbandster's threads)
                self._error()

        def __call__(self, job) -> None:
            try:
                records = []
                if isinstance(job.result, dict) and isinstance(job.result.get("info"), dict):
                    records = job.result["info"].pop("records", []) or []
                if self.store is not None:
                    for record in records:
                        self.store.append_record(compat.json_safe(record))
                super().__call__(job)
                if self.on_run is not None:
                    result = job.result or {}
                    self.on_run(
                        RunRecord(
                            config_id=tuple(self._id(job.id)),
                            config=compat.to_builtin(job.kwargs["config"]),
                            budget=float(job.kwargs["budget"]),
                            loss=result.get("loss"),
                            info=result.get("info") or {},
                            started=job.timestamps.get("started", np.nan),
                            finished=job.timestamps.get("finished", np.nan),
                            error=job.exception,
                        )
                    )
            except Exception:  # noqa: BLE001
                self._error()

        def _error(self) -> None:
            text = traceback.format_exc()
            self.errors.append(text)
            print(f"harness.tune: error while logging a result (the run continues):\n{text}", file=sys.stderr)

    return TuneLogger
