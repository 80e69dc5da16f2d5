"""What every tuning backend shares: safe evaluation, the live logs, and the backend registry.

The maintained backends (SMAC3, Optuna) write their evaluations in hpbandster's live-log format
(``configs.json``, ``results.json``: one JSON array per line), so ``bohb_logs.load_runs``, the
"folder already holds a run" check, the plots and ``best_hyperparameters.json`` read every backend's
folder the same way, and each evaluation's trial records go to the folder's ``trials.jsonl``.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from harness.runner.store import TrialStore
from harness.tune.hpbandster_compat import dumps, json_safe, to_builtin
from harness.tune.objective import FAILED_LOSS, Objective
from harness.tune.tuner import RunCallback, RunRecord

# backend -> (modules it imports, extra to install). hpbandster is kept for exact reproduction of
# [001]; smac and optuna are maintained alternatives behind the same ``Tuner`` interface.
# ``extra``: the das-harness extra that installs them (pyproject.toml).
DISTRIBUTION = "das-harness"
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "hpbandster": (("hpbandster", "Pyro4", "ConfigSpace"), "tune"),
    "smac": (("smac", "ConfigSpace"), "smac"),
    "optuna": (("optuna", "ConfigSpace"), "optuna"),
}


class BackendUnavailable(RuntimeError):
    """A backend whose optional package is not installed (or an unknown backend name)."""


def require_backend(name: str) -> None:
    """Raise ``BackendUnavailable`` with the install command unless ``name``'s packages import."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    modules, extra = BACKENDS[name]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise BackendUnavailable(
                f"backend {name!r} needs the {module!r} package, which does not import ({exc}); "
                f'install it with  pip install "{DISTRIBUTION}[{extra}]"  (in a checkout: pip install -e ".[{extra}]")'
            ) from None


def evaluate_safely(objective: Objective, config: dict, budget: float, failure_loss: float = FAILED_LOSS) -> dict:
    """``{"loss", "info"}`` of one evaluation in builtin types (trial records in ``info["records"]``).

    An exception becomes a failed evaluation with the finite ``failure_loss``, so a model-based
    optimizer keeps a usable (bad) point instead of a crash.
    """
    try:
        ev = objective(to_builtin(dict(config)), float(budget))
        info = {**ev.info, "status": ev.status, "records": ev.records}
        return json_safe({"loss": float(ev.loss), "info": info})
    except Exception as exc:  # noqa: BLE001
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {
            "loss": float(failure_loss),
            "info": {
                "status": "failed",
                "failure_reasons": [f"objective raised: {last}"],
                "traceback": traceback.format_exc(limit=8),
            },
        }


class RunLog:
    """Appends evaluations to ``configs.json`` / ``results.json`` (hpbandster's format) and the trial
    store, and reports each to ``on_run``. Thread-safe: Optuna may evaluate in several threads."""

    def __init__(self, folder: str | os.PathLike, on_run: RunCallback | None = None) -> None:
        from harness.tune.bohb_logs import CONFIGS_FILE, RESULTS_FILE

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.configs_path, self.results_path = self.folder / CONFIGS_FILE, self.folder / RESULTS_FILE
        self.store = TrialStore(self.folder)
        self.on_run = on_run
        self.seen: set[tuple] = set()
        self.runs: list[RunRecord] = []
        self._lock = threading.Lock()

    def log(
        self, config_id: tuple, config: dict, budget: float, result: dict | None, started: float,
        finished: float | None = None, error: str | None = None,
    ) -> RunRecord:
        """Log one evaluation (``result`` as returned by ``evaluate_safely``; None: no result)."""
        finished = time.time() if finished is None else finished
        config = to_builtin(dict(config))
        result = None if result is None else dict(result, info=dict(result.get("info") or {}))
        records = (result["info"].pop("records", None) or []) if result else []
        stamps = {"submitted": started, "started": started, "finished": finished}
        run = RunRecord(
            config_id=tuple(config_id), config=config, budget=float(budget),
            loss=None if result is None else float(result["loss"]), info=(result or {}).get("info") or {},
            started=started, finished=finished, error=error,
        )
        with self._lock:
            if run.config_id not in self.seen:
                self.seen.add(run.config_id)
                self._append(self.configs_path, [list(run.config_id), config, {}])
            self._append(self.results_path, [list(run.config_id), run.budget, stamps, result, error])
            for record in records:
                self.store.append_record(json_safe(record))
            self.runs.append(run)
            if self.on_run is not None:
                self.on_run(run)
        return run

    @staticmethod
    def _append(path: Path, line: Any) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(dumps(line) + "\n")


def integer_eta(eta: float, backend: str) -> int:
    """SMAC's and Optuna's Hyperband take an integer eta (reduction factor)."""
    if float(eta) != int(eta):
        raise ValueError(f"backend {backend} needs an integer eta, got {eta:g}")
    return int(eta)
