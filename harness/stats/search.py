"""Budget questions: random-search steps to beat DAS, and how many seeds a study needs.

[001] §5.2: "Random search needs on average (10 runs) 49 random search steps to improve over
the DAS median of 18.57". We rebuild that number from stored ``random`` trials by replaying
random-search runs drawn from them. The seed budget says whether 75 trials per cell pin the
median down well enough, by extrapolating the bootstrap CI width as ``c / sqrt(n)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.stats._common import (
    GROUP_COLUMNS,
    METRIC,
    MIN_N_CI,
    OPTIONAL_GROUP_COLUMNS,
    as_list,
    bootstrap_ci,
    group_metric,
    group_rng,
    iter_groups,
    join_notes,
    mixed_settings,
    n_failed,
    ok_values,
    rng_key,
)

OTHER_SETTINGS = tuple(c for c in OPTIONAL_GROUP_COLUMNS if c != METRIC)  # what mixed_settings ignores

STEPS_COLUMNS = [
    "reference",
    "target",
    "n_pool",
    "n_pool_failed",
    "n_better",
    "p_better",
    "expected_steps",
    "n_runs",
    "n_censored",
    "mean_steps",
    "median_steps",
    "steps",
    "note",
]


def steps_to_beat(
    pool: np.ndarray,
    target: float,
    *,
    n_runs: int = 10,
    replace: bool = True,
    max_steps: int = 1000,
    rng: np.random.Generator | int = 0,
    direction: str = "max",
) -> np.ndarray:
    """Per run, the number of random draws from ``pool`` until a value beats ``target`` (exceeds
    it; with ``direction='min'``, falls below it).

    Runs that never beat it (within ``max_steps``, or through the whole pool when drawing
    without replacement) are censored and returned as NaN.
    """
    sign = 1.0 if direction == "max" else -1.0
    pool, target = sign * np.asarray(pool, dtype=float), sign * target
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    steps = np.full(n_runs, np.nan)
    if pool.size == 0:
        return steps
    for r in range(n_runs):
        order = rng.integers(0, pool.size, size=max_steps) if replace else rng.permutation(pool.size)
        hits = np.flatnonzero(pool[order] > target)
        if hits.size:
            steps[r] = hits[0] + 1
    return steps


def expected_steps(n_pool: int, n_better: int, replace: bool = True) -> float:
    """Exact expectation: 1/p with replacement (geometric), (N+1)/(K+1) for a random order."""
    if n_better == 0:
        return np.nan
    return n_pool / n_better if replace else (n_pool + 1) / (n_better + 1)


def random_search_steps(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("dataset", "space", "op_set"),
    *,
    reference_method: str = "das",
    random_method: str = "random",
    target: float | None = None,
    score: str = "arch_score",
    n_runs: int = 10,
    replace: bool = True,
    max_steps: int = 1000,
    count_failed: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Random draws needed to beat the reference median, one row per group and reference hp set.

    The pool is the group's ``random_method`` trials (all hp sets). With ``count_failed`` a
    failed random trial is a draw that did not improve (it still cost a training run). A
    fixed ``target`` (e.g. the paper's 18.57) replaces the reference medians. A pool or
    reference that mixes epochs, variants or metrics is not pooled (NaN and a note): add
    ``epochs`` and ``variant`` to ``by`` for such studies. "Beat" follows the metric's direction.
    """
    cols = as_list(by)
    rows = []
    for labels, g in iter_groups(df, cols):
        pool_df = g[g["method"] == random_method]
        ref_df = g[g["method"] == reference_method]
        if pool_df.empty and (ref_df.empty or target is not None):
            continue
        # Different rows, and scores of different metrics, are never one pool.
        pool_mixed = mixed_settings(pool_df, cols) or ("" if METRIC in cols else mixed_settings(g, OTHER_SETTINGS))
        usable = pool_df.iloc[:0] if pool_mixed else pool_df
        direction = group_metric(g).direction
        pool = ok_values(usable, score)
        failed = len(usable) - pool.size  # failed trials and ok ones without a score
        if count_failed:
            pool = np.concatenate([pool, np.full(failed, -np.inf if direction == "max" else np.inf)])
        if target is not None:
            targets = [("fixed", float(target), "")]
        else:
            targets = []
            for hp, rg in ref_df.groupby(ref_df["hp_set"].astype(object).fillna("-"), sort=True):
                ref_mixed = mixed_settings(rg, cols)
                ref = ok_values(rg.iloc[:0] if ref_mixed else rg, score)
                if ref_mixed:
                    note = f"{reference_method}/{hp} {ref_mixed}: not pooled, no target"
                else:
                    note = "" if ref.size else f"no ok {reference_method} trials"
                median = float(np.median(ref)) if ref.size else np.nan
                targets.append((f"{reference_method}/{hp}", median, note))
            if not targets:
                targets = [("-", np.nan, f"no {reference_method} trials")]
        for ref_label, tgt, ref_note in targets:
            better = pool > tgt if direction == "max" else pool < tgt
            n_better = int(better.sum()) if np.isfinite(tgt) else 0
            row = {**labels, "reference": ref_label, "target": tgt, "n_pool": int(pool_df.shape[0])}
            row.update(n_pool_failed=int(failed), n_better=n_better, n_runs=n_runs)
            row["p_better"] = n_better / pool.size if pool.size else np.nan
            row["expected_steps"] = expected_steps(pool.size, n_better, replace)
            notes = [ref_note]
            if pool_mixed:
                notes.append(f"{random_method} trials {pool_mixed}: not pooled")
            if pool_df.empty:
                notes.append(f"no {random_method} trials")
            if np.isfinite(tgt) and pool.size:
                rng = group_rng(seed, ("steps", *rng_key(labels), ref_label))
                kw = dict(n_runs=n_runs, replace=replace, max_steps=max_steps, rng=rng, direction=direction)
                steps = steps_to_beat(pool, tgt, **kw)
            else:
                steps = np.full(n_runs, np.nan)
            done = steps[np.isfinite(steps)]
            row["n_censored"] = int(n_runs - done.size) if pool.size and np.isfinite(tgt) else n_runs
            row["mean_steps"] = float(done.mean()) if done.size else np.nan
            row["median_steps"] = float(np.median(done)) if done.size else np.nan
            row["steps"] = ",".join("censored" if not np.isfinite(s) else str(int(s)) for s in steps)
            if pool.size and np.isfinite(tgt) and n_better == 0:
                notes.append(f"no {random_method} trial beats the target: all runs censored")
            elif row["n_censored"] and done.size:
                notes.append(f"{row['n_censored']} run(s) censored (mean over the others is a lower bound)")
            row["note"] = join_notes(*notes)
            rows.append(row)
    return pd.DataFrame(rows, columns=cols + STEPS_COLUMNS)


def _default_sizes(n: int, min_n: int) -> list[int]:
    return sorted({round(float(s)) for s in np.geomspace(min_n, n, num=6)} | {n})


def ci_width_curve(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    statistic: str = "median",
    score: str = "arch_score",
    sizes: Sequence[int] | None = None,
    n_repeats: int = 20,
    n_boot: int = 500,
    ci: float = 0.95,
    min_n: int = MIN_N_CI,
    seed: int = 0,
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """Mean bootstrap-CI width of ``statistic`` on random subsamples of n ok trials, per group.

    ``min_n`` is at least ``MIN_N_CI``: smaller subsamples have no CI to measure.
    """
    min_n = max(min_n, MIN_N_CI)
    cols = as_list(by)
    rows = []
    for labels, g in iter_groups(df, cols):
        values = ok_values(g, score)
        if values.size < min_n:
            continue
        rng = group_rng(seed, ("budget", *rng_key(labels)))
        grid = sorted({int(s) for s in sizes if min_n <= s <= values.size}) if sizes else None
        for n in grid or _default_sizes(values.size, min_n):
            widths = []
            for _ in range(n_repeats if n < values.size else 1):
                sub = rng.choice(values, size=n, replace=False)
                low, high = bootstrap_ci(sub, statistic, n_boot=n_boot, ci=ci, rng=rng, method=ci_method)
                widths.append(high - low)
            widths = [w for w in widths if np.isfinite(w)]  # a subsample with no defined CI
            if not widths:
                continue
            row = {**labels, "n": n, "width_mean": float(np.mean(widths)), "width_std": float(np.std(widths))}
            rows.append(row)
    return pd.DataFrame(rows, columns=cols + ["n", "width_mean", "width_std"])


def fit_inverse_sqrt(n: np.ndarray, width: np.ndarray) -> float:
    """Least-squares ``c`` in ``width = c / sqrt(n)``."""
    x = 1.0 / np.sqrt(np.asarray(n, dtype=float))
    w = np.asarray(width, dtype=float)
    return float((w * x).sum() / (x * x).sum())


def seed_budget(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    target_width: float = 1.0,
    statistic: str = "median",
    score: str = "arch_score",
    sizes: Sequence[int] | None = None,
    n_repeats: int = 20,
    n_boot: int = 500,
    ci: float = 0.95,
    min_n: int = MIN_N_CI,
    seed: int = 0,
    curve: pd.DataFrame | None = None,
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """Ok trials needed for the CI of ``statistic`` to be ``target_width`` wide, per group.

    ``n_trials_needed`` inflates ``n_needed`` by the group's failure rate, since failed
    trials cost a run but give no score. ``enough`` says whether the group already has them.
    Pass a ``ci_width_curve`` result as ``curve`` to reuse it.
    """
    cols = as_list(by)
    min_n = max(min_n, MIN_N_CI)
    curve = (
        curve
        if curve is not None
        else ci_width_curve(
            df,
            cols,
            statistic=statistic,
            score=score,
            sizes=sizes,
            n_repeats=n_repeats,
            n_boot=n_boot,
            ci=ci,
            min_n=min_n,
            seed=seed,
            ci_method=ci_method,
        )
    )
    rows = []
    for labels, g in iter_groups(df, cols):
        values = ok_values(g, score)
        row = {**labels, "n": len(g), "n_failed": n_failed(g), "n_ok": int(values.size)}
        row["target_width"] = target_width
        row.update(ci_width=np.nan, c=np.nan, n_needed=np.nan, n_trials_needed=np.nan, enough=None, note="")
        if values.size < min_n:
            row["note"] = f"too few trials for a CI-width estimate (n_ok={values.size} < {min_n})"
            rows.append(row)
            continue
        mask = np.ones(len(curve), dtype=bool)
        for c in cols:
            mask &= (curve[c] == labels[c]).to_numpy()
        sub = curve[mask]
        if sub.empty:
            row["note"] = "no CI-width curve for this group"
            rows.append(row)
            continue
        row["ci_width"] = float(sub.loc[sub["n"].idxmax(), "width_mean"])
        row["c"] = c_fit = fit_inverse_sqrt(sub["n"], sub["width_mean"])
        notes = []
        if c_fit <= 0:
            row["n_needed"] = min_n
            notes.append("constant values: CI width 0")
        else:
            row["n_needed"] = max(min_n, math.ceil((c_fit / target_width) ** 2))
        ok_rate = values.size / len(g)
        row["n_trials_needed"] = math.ceil(row["n_needed"] / ok_rate)
        row["enough"] = bool(len(g) >= row["n_trials_needed"])
        row["note"] = join_notes(*notes)
        rows.append(row)
    columns = cols + ["n", "n_failed", "n_ok", "target_width", "ci_width", "c", "n_needed"]
    return pd.DataFrame(rows, columns=columns + ["n_trials_needed", "enough", "note"])
