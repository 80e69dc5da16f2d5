"""The tuning folder's summary files: ``best_hyperparameters.json`` and ``runs.csv``.

``best_hyperparameters.json`` holds the incumbent as complete ``HyperParams`` fields under
``"hyperparameters"`` (so ``hp_set: tuned:<folder>`` in a study file reproduces it exactly,
untuned fields included) plus metadata on where it came from.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.atomic import write_csv_atomic, write_json_atomic
from harness.methods.hyperparams import TUNED_FILE, resolve_hp_set
from harness.tune.hpbandster_compat import json_safe
from harness.tune.space import split_config
from harness.tune.tuner import TuneResult

RUNS_CSV = "runs.csv"


def best_hyperparameters(result: TuneResult, config) -> dict | None:
    """The JSON object written to ``best_hyperparameters.json`` (None without an incumbent)."""
    inc = result.incumbent
    if inc is None:
        return None
    hp_config, method_options = split_config(inc.config)
    hp = resolve_hp_set(config.task.base_hp_set, {**config.task.hp_overrides, **hp_config})
    evaluated = sorted({r.config_id for r in result.runs})
    return json_safe(
        {
            "hyperparameters": hp.to_dict(),
            "method_options": method_options,
            "score": inc.score,
            "loss": inc.loss,
            "budget": inc.budget,
            "epochs": inc.info.get("epochs"),
            "config_id": list(inc.config_id),
            "at_max_budget": inc.budget >= max(result.budgets) - 1e-9,
            "objective": config.objective,
            "seeds": config.trial_seeds,
            "quantile": config.quantile if config.objective == "robust" else None,
            "task": {
                "dataset": config.task.dataset,
                "space": config.task.space,
                "op_set": config.task.op_set,
                "method": config.task.method,
                "base_hp_set": config.task.base_hp_set,
                "options": config.task.options,
            },
            "tuned": sorted(inc.config),
            "n_configurations": len(evaluated),
            "n_evaluations": len(result.runs),
            "n_failed": sum(not r.ok for r in result.runs),
            "budgets": result.budgets,
            "source": config.source,
            "name": config.name,
            "backend": getattr(config, "backend", "hpbandster"),
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )


def write_best(result: TuneResult, config, folder: str | Path) -> Path | None:
    data = best_hyperparameters(result, config)
    if data is None:
        return None
    # atomic: a study reading it never sees half a file
    return write_json_atomic(Path(folder) / TUNED_FILE, data, allow_nan=False)


def write_runs_csv(result: TuneResult, folder: str | Path) -> Path:
    """One row per evaluation: id, budget, epochs, status, score, loss and the configuration."""
    import pandas as pd

    rows = []
    for r in result.runs:
        rows.append(
            {
                "config_id": "-".join(str(i) for i in r.config_id),
                "budget": r.budget,
                "epochs": r.info.get("epochs"),
                "status": "ok" if r.ok else "failed",
                "score": r.score,
                "loss": r.loss,
                "failure_reasons": "; ".join(
                    r.info.get("failure_reasons", []) or ([r.error] if r.error else [])
                ),
                "finished": r.finished,
                **{f"hp.{k}": v for k, v in sorted(r.config.items())},
            }
        )
    path = Path(folder) / RUNS_CSV
    return write_csv_atomic(path, pd.DataFrame(rows))
