"""Comparing two methods (or hyperparameter sets) on the same data set and search space.

Score distributions over seeds are skewed and often bimodal (the paper's failure clusters),
so we compare medians with a bootstrap CI (scipy's, BCa by default), use the rank-based
Mann-Whitney U test, and give the probability that a random trial of A beats one of B: the
chance a user who runs each once ends up better off with A ("beats": a higher score for a
metric where higher is better, a lower one for a metric like ``params_m``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from harness.stats._common import (
    MIN_N_CI,
    MISSING_LABEL,
    OPTIONAL_GROUP_COLUMNS,
    as_list,
    bootstrap_interval,
    group_rng,
    iter_groups,
    join_notes,
    metric_labels,
    mixed_settings,
    n_failed,
    ok_values,
    rng_key,
)
from harness.tasks.metrics import find_metric

COMPARE_COLUMNS = [
    "a",
    "b",
    "n_a",
    "n_b",
    "n_failed_a",
    "n_failed_b",
    "median_a",
    "median_b",
    "median_diff",
    "median_diff_ci_low",
    "median_diff_ci_high",
    "mannwhitney_u",
    "mannwhitney_p",
    "prob_a_beats_b",
    "n_paired",
    "n_same_genotype",
    "note",
]


def prob_superiority(a: np.ndarray, b: np.ndarray) -> float:
    """P(random trial of A > random trial of B), ties counting 1/2; NaN if a side is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return np.nan
    diff = a[:, None] - b[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def median_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(a, axis=axis) - np.median(b, axis=axis)


def compare_two(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | int = 0,
    ci_method: str = "BCa",
    min_n: int = MIN_N_CI,
    direction: str = "max",
) -> dict:
    """Median difference (A - B) with bootstrap CI, two-sided Mann-Whitney U, P(A beats B).

    A and B are resampled independently; below ``min_n`` trials on a side there is no CI.
    ``direction`` is the metric's: with ``'min'`` A beats B where its score is lower.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    # Columns that need the rows' trials, not just their scores: compare_groups fills them.
    from_trials = ("a", "b", "n_failed_a", "n_failed_b", "n_paired", "n_same_genotype")
    out = {c: np.nan for c in COMPARE_COLUMNS if c not in from_trials}
    out.update(n_a=int(a.size), n_b=int(b.size), note="")
    if a.size == 0 or b.size == 0:
        out["note"] = "a side has no ok trials"
        return out
    out["median_a"], out["median_b"] = float(np.median(a)), float(np.median(b))
    out["median_diff"] = out["median_a"] - out["median_b"]
    out["prob_a_beats_b"] = prob_superiority(a, b) if direction == "max" else prob_superiority(b, a)
    notes = []
    if np.unique(np.concatenate([a, b])).size == 1:
        notes.append("all values equal: no test")
    else:
        res = stats.mannwhitneyu(a, b, alternative="two-sided")
        out["mannwhitney_u"], out["mannwhitney_p"] = float(res.statistic), float(res.pvalue)
    low, high, ci_note = bootstrap_interval(
        (a, b), median_difference, n_boot=n_boot, ci=ci, method=ci_method, rng=rng, min_n=min_n
    )
    out["median_diff_ci_low"], out["median_diff_ci_high"] = low, high
    out["note"] = join_notes(*notes, ci_note)
    return out


def genotype_agreement(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, int]:
    """(seeds with an ok trial in both A and B, those of them whose genotypes are identical).

    Why: two methods that return the same architecture for a seed retrain it with the same seed,
    so on one CPU and batch plan they score the same (within rounding otherwise); a score
    difference between rows that mostly agree is not a better search. (0, 0) without seeds.
    """
    if not {"seed", "genotype"} <= set(a.columns) & set(b.columns):
        return 0, 0
    ga, gb = _genotypes_by_seed(a), _genotypes_by_seed(b)
    paired = set(ga) & set(gb)
    return len(paired), sum(ga[s] == gb[s] for s in paired)


def _genotypes_by_seed(part: pd.DataFrame) -> dict:
    ok = part[part["status"] == "ok"] if "status" in part.columns else part
    return {
        seed: json.dumps(genotype, sort_keys=True)
        for seed, genotype in zip(ok["seed"], ok["genotype"], strict=True)
        if isinstance(genotype, (list, tuple, dict, str))
    }


def _labels_of(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns and column in OPTIONAL_GROUP_COLUMNS:
        return pd.Series(MISSING_LABEL, index=df.index, dtype=object)
    return df[column].astype(object).where(df[column].notna(), MISSING_LABEL).astype(str)


def level_labels(df: pd.DataFrame, between: str | Sequence[str]) -> pd.Series:
    """The label of each trial's level, e.g. ``'das/H1'`` for ``between=('method', 'hp_set')``."""
    cols = as_list(between)
    parts = [_labels_of(df, c) for c in cols]
    label = parts[0]
    for p in parts[1:]:
        label = label + "/" + p
    return label


def compare_groups(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("dataset", "space", "op_set"),
    between: str | Sequence[str] = ("method", "hp_set"),
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    score: str = "arch_score",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """Compare every pair of levels of ``between`` (or the given ``pairs``) within each ``by`` group.

    Levels are labelled by joining the ``between`` columns with '/'; with the defaults a row
    compares e.g. ``das/H1`` with ``random/H1`` on blur, sequential, all ops. A level that mixes
    epochs, variants or metrics, or two levels scored by different metrics, get NaN and a note
    rather than pooling them: add ``epochs``/``variant`` to ``by`` or ``between`` to compare such
    rows. P(A beats B) follows the metric's direction.
    """
    cols = as_list(by)
    same = cols + as_list(between)
    rows = []
    for labels, g in iter_groups(df, cols):
        lev = level_labels(g, between)
        metric = metric_labels(g)
        present = sorted(lev.unique())
        todo = pairs if pairs is not None else list(itertools.combinations(present, 2))
        for a, b in todo:
            if a not in present or b not in present:
                continue
            ga, gb = g[lev == a], g[lev == b]
            why = {name: mixed_settings(part, same) for name, part in ((a, ga), (b, gb))}
            names = sorted(set(metric[lev == a]) | set(metric[lev == b]))
            if len(names) > 1 and not any(why.values()):
                why[f"{a} vs {b}"] = f"score different metrics ({', '.join(map(str, names))})"
            if any(why.values()):
                res = {c: np.nan for c in COMPARE_COLUMNS[2:]}
                res.update(n_a=ok_values(ga, score).size, n_b=ok_values(gb, score).size)
                res["note"] = join_notes(*(f"{k} {v}" for k, v in why.items() if v), "not pooled: no comparison")
            else:
                rng = group_rng(seed, ("compare", *rng_key(labels), a, b))
                kw = dict(n_boot=n_boot, ci=ci, rng=rng, ci_method=ci_method, direction=find_metric(names[0]).direction)
                res = compare_two(ok_values(ga, score), ok_values(gb, score), **kw)
            failed = {"n_failed_a": n_failed(ga), "n_failed_b": n_failed(gb)}
            res["n_paired"], res["n_same_genotype"] = genotype_agreement(ga, gb)
            rows.append({**labels, "a": a, "b": b, **failed, **res})
    return pd.DataFrame(rows, columns=cols + COMPARE_COLUMNS)
