"""Per-group descriptive statistics of architecture and one-shot scores.

The paper reports max/mean/median over trials; we add spread (std, IQR) and bootstrap CIs
because a single number hides how (un)reliable a method is across seeds. Tiny groups keep their
descriptive values (min/max/median of what there is) but get no CI: it would be meaningless.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.stats._common import (
    GROUP_COLUMNS,
    as_list,
    bootstrap_interval,
    group_rng,
    iter_groups,
    join_notes,
    n_failed,
    ok_mask,
    ok_values,
)

SCORE_STATS = ("min", "max", "mean", "median", "std", "variance", "iqr")


def score_stats(values: np.ndarray, prefix: str = "") -> dict:
    """min/max/mean/median/std/variance/IQR of finite values (std and variance with ddof=1)."""
    v = np.asarray(values, dtype=float)
    out = {f"{prefix}{k}": np.nan for k in SCORE_STATS}
    if v.size == 0:
        return out
    q1, q3 = np.percentile(v, [25, 75])
    out.update(
        {
            f"{prefix}min": float(v.min()),
            f"{prefix}max": float(v.max()),
            f"{prefix}mean": float(v.mean()),
            f"{prefix}median": float(np.median(v)),
            f"{prefix}iqr": float(q3 - q1),
        }
    )
    if v.size >= 2:
        out[f"{prefix}std"] = float(v.std(ddof=1))
        out[f"{prefix}variance"] = float(v.var(ddof=1))
    return out


def _count_note(n_ok: int, n_missing: int, what: str) -> str:
    notes = []
    if n_ok == 0:
        notes.append(f"no ok trials with {what}")
    if n_missing:
        notes.append(f"{n_missing} ok trial(s) without {what}")
    return join_notes(*notes)


def describe_scores(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    score: str = "arch_score",
    oneshot: str | None = "oneshot_score",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """One row per group: counts, score statistics, bootstrap CIs, one-shot stats, runtime.

    ``n`` counts all trials (failed included), ``n_failed`` those whose status is not ok and
    ``n_ok`` the ok trials with a finite score, the only ones that enter the statistics.
    ``mean_ci_note``/``median_ci_note`` say why a CI is NaN (too few trials) or which interval
    replaced BCa; ``note`` is about the counts. ``runtime_mean_s`` is over ok trials;
    ``runtime_total_s`` over all trials (the cost).
    """
    cols = as_list(by)
    rows = []
    for labels, g in iter_groups(df, cols):
        values = ok_values(g, score)
        n_ok_status = int(ok_mask(g).sum())
        row = {**labels, "n": len(g), "n_failed": n_failed(g), "n_ok": int(values.size)}
        row.update(score_stats(values))
        rng = group_rng(seed, labels)
        for stat in ("mean", "median"):
            low, high, note = bootstrap_interval((values,), stat, n_boot=n_boot, ci=ci, method=ci_method, rng=rng)
            row.update({f"{stat}_ci_low": low, f"{stat}_ci_high": high, f"{stat}_ci_note": note})
        row["note"] = _count_note(values.size, n_ok_status - values.size, score)
        if oneshot is not None:
            shot = ok_values(g, oneshot)
            row["oneshot_n"] = int(shot.size)
            row.update(score_stats(shot, prefix="oneshot_"))
            row["oneshot_note"] = "" if shot.size else f"no {oneshot} (baseline or not recorded)"
        runtime = ok_values(g, "runtime_s")
        row["runtime_mean_s"] = float(runtime.mean()) if runtime.size else np.nan
        all_runtime = pd.to_numeric(g.get("runtime_s", pd.Series(dtype=float)), errors="coerce")
        row["runtime_total_s"] = float(all_runtime.sum(min_count=1)) if len(all_runtime) else np.nan
        rows.append(row)
    columns = cols + ["n", "n_failed", "n_ok", *SCORE_STATS]
    columns += ["mean_ci_low", "mean_ci_high", "mean_ci_note", "median_ci_low", "median_ci_high", "median_ci_note"]
    columns += ["note"]
    if oneshot is not None:
        columns += ["oneshot_n", *(f"oneshot_{k}" for k in SCORE_STATS), "oneshot_note"]
    columns += ["runtime_mean_s", "runtime_total_s"]
    return pd.DataFrame(rows, columns=columns)


def summary_table(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """``describe_scores`` joined with the one-shot/architecture ``correlations`` per group."""
    from harness.stats.correlation import correlations

    cols = as_list(by)
    desc = describe_scores(df, cols, n_boot=n_boot, ci=ci, seed=seed, ci_method=ci_method)
    corr = correlations(df, cols, n_boot=n_boot, ci=ci, seed=seed, ci_method=ci_method)
    if not cols:
        return pd.concat([desc, corr], axis=1)
    return desc.merge(corr, on=cols, how="left")
