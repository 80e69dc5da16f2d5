"""Synthetic trial records shaped like the runner's, for tests, demos and the notebook.

Why: reports and notebooks must be exercisable in seconds without training anything. The
numbers are made up (loosely in the paper's PSNR ranges); never mix them with real results.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.runner.store import TrialStore

SEARCH_METHODS = ("das",)
BASELINE_OPS = {"lg-only": "lgd", "nets-only": "net"}
_BASE = {"blur": 21.0, "downsampling": 16.0}
_OFFSET = {"lg-only": -4.0, "nets-only": -1.5, "das": 0.0, "random": 0.3, "random-search": 1.0}


def op_names(op_set: str, space: str) -> list[str]:
    ops = ["lgd", "net"] if op_set == "good" else ["lgd", "net", "roll", "noise"]
    return ops + ["zero"] if space == "nonsequential" else ops


def position_names(space: str) -> list[str]:
    if space == "sequential":
        return [f"layer {i}" for i in range(10)]
    edges = [f"{i}->{j}" for j in range(1, 6) for i in range(j)]
    return [f"cell {c} edge {e}" for c in (1, 2) for e in edges]


def synthetic_records(
    *,
    datasets: Sequence[str] = ("blur", "downsampling"),
    spaces: Sequence[str] = ("sequential",),
    op_sets: Sequence[str] = ("good", "all"),
    methods: Sequence[str] = ("lg-only", "nets-only", "das", "random", "random-search"),
    hp_sets: Sequence[str] = ("H1",),
    n_seeds: int = 8,
    epochs: int = 4,
    fail_rate: float = 0.1,
    seed: int = 0,
) -> list[dict]:
    """Records for every (dataset, space, op set, method, hp set, seed); hp sets only vary DAS."""
    rng = np.random.default_rng(seed)
    records = []
    for dataset, space, op_set, method in itertools.product(datasets, spaces, op_sets, methods):
        if method in BASELINE_OPS and op_set != "good":
            continue
        ops, positions = op_names(op_set, space), position_names(space)
        for hp_set in hp_sets if method in SEARCH_METHODS else hp_sets[:1]:
            for s in range(n_seeds):
                rec = _record(rng, dataset, space, op_set, method, hp_set, s, epochs, ops, positions)
                if rng.random() < fail_rate:
                    rec.update(status="failed", failure_reason="synthetic NaN", arch_score=None)
                rec["trial_id"] = f"{dataset}-{space}-{op_set}-{method}-{hp_set}-{s}"
                records.append(rec)
    return records


def _record(rng, dataset, space, op_set, method, hp_set, seed, epochs, ops, positions) -> dict:
    search = method in SEARCH_METHODS
    base = _BASE[dataset] + _OFFSET.get(method, 0.0) - (0.0 if space == "sequential" else 6.0)
    # With all ops most random architectures contain a harmful op; DAS avoids them more often.
    harmful = op_set == "all" and rng.random() < (0.3 if method == "das" else 0.85)
    arch = base + rng.normal(0, 1.0) - (rng.uniform(4, 10) if harmful else 0.0)
    history = None
    if search:
        drift = rng.normal(0, 0.3, size=(len(positions), len(ops)))
        history = [(drift * e + rng.normal(0, 1e-3, drift.shape)).tolist() for e in range(epochs + 1)]
        choice = [ops[k] for k in np.argmax(history[-1], axis=1)]
    elif method in BASELINE_OPS:
        choice = [BASELINE_OPS[method]] * len(positions)
    else:
        choice = [str(o) for o in rng.choice(ops, size=len(positions))]
    genotype = choice if space == "sequential" else [choice[:15], choice[15:]]
    record = {
        "dataset": dataset,
        "space": space,
        "op_set": op_set,
        "method": method,
        "hp_set": hp_set,
        "seed": seed,
        "epochs": epochs,
        "status": "ok",
        "failure_reason": "",
        "metric": "psnr",
        "oneshot_score": float(0.5 * arch + rng.normal(10, 1.0)) if search else None,
        "arch_score": float(arch),
        "runtime_s": float(rng.uniform(1, 3) * (3 if search else 1)),
        "search_runtime_s": float(rng.uniform(1, 2)) if search else None,
        "retrain_runtime_s": float(rng.uniform(0.5, 1)),
        "genotype": genotype,
        "n_param_free_ops": int(sum(o in ("roll", "noise", "zero") for o in choice)),
        "final_alphas": history[-1] if history else None,
        "alpha_history": history,
        "extra": {"op_names": ops, "positions": positions},
        "overrides": {},
        "options": {},
        "finished_at": "2025-01-01T00:00:00",
    }
    return record


def write_synthetic_study(folder: str | os.PathLike, **options) -> Path:
    """Append ``synthetic_records(**options)`` to ``<folder>/trials.jsonl``; returns the folder."""
    store = TrialStore(folder)
    for record in synthetic_records(**options):
        store.append_record(record)
    return Path(folder)
