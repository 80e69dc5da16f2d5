"""Correlation between one-shot (supernet) and architecture (retrained) scores.

DAS assumes that a better one-shot score means a better final architecture; the paper's
Figs 3-8 show that this often fails. We report Pearson (with the regression line drawn in
the figures), Spearman and Kendall, each with a p-value and a paired bootstrap CI (scipy's,
BCa by default). Tiny groups get NaN and a note: a perfect rank order of 3 trials is not evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from harness.stats._common import (
    GROUP_COLUMNS,
    MIN_N_CI,
    as_list,
    as_rng,
    bootstrap_interval,
    group_rng,
    iter_groups,
    join_notes,
    ok_pairs,
    rng_key,
)

# Fewest pairs for a correlation, its p-value and (with at least MIN_N_CI pairs) its CI. With
# n = 4 there are 4! = 24 orderings, so even a perfect rank agreement has an exact two-sided
# Spearman (and Kendall) p-value of 2/24 = 1/12 > 0.05: four trials can never show a rank
# correlation. From n = 5 (2/120 < 0.05) they can. Pearson uses the same pairs and the same floor
# so that the three columns of a row always describe the same evidence.
MIN_N_CORRELATION = 5

CORRELATION_COLUMNS = [
    "n_pairs",
    "pearson_r",
    "pearson_p",
    "pearson_ci_low",
    "pearson_ci_high",
    "slope",
    "intercept",
    "pearson_note",
    "spearman_rho",
    "spearman_p",
    "spearman_ci_low",
    "spearman_ci_high",
    "spearman_note",
    "kendall_tau",
    "kendall_p",
    "kendall_ci_low",
    "kendall_ci_high",
    "kendall_note",
]


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=1) / np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _rowwise_pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


def _rowwise_kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b per row: sum of concordance signs over untied-pair counts."""
    i, j = np.triu_indices(x.shape[1], k=1)
    step = max(1, 2_000_000 // max(i.size, 1))
    out = []
    for s in range(0, x.shape[0], step):
        sx = np.sign(x[s : s + step, i] - x[s : s + step, j])
        sy = np.sign(y[s : s + step, i] - y[s : s + step, j])
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((sx * sy).sum(axis=1) / np.sqrt((sx**2).sum(axis=1) * (sy**2).sum(axis=1)))
    return np.concatenate(out) if out else np.array([], dtype=float)


def _paired(rowwise):
    """A scipy-vectorized ``statistic(x, y, axis)`` from a function of (rows, n) arrays."""

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
        flat = rowwise(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]))
        return flat.reshape(x.shape[:-1])

    return statistic


STATISTICS = {
    "pearson": _paired(_rowwise_pearson),
    "spearman": _paired(_rowwise_spearman),
    "kendall": _paired(_rowwise_kendall),
}


def _skip_reason(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str, min_n: int) -> str:
    if x.size == 0:
        return f"no trials with both {x_name} and {y_name}"
    if x.size < min_n:
        return f"too few trials for a correlation (n={x.size} < {min_n})"
    if np.all(x == x[0]):
        return f"constant {x_name}"
    if np.all(y == y[0]):
        return f"constant {y_name}"
    return ""


def correlate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | int = 0,
    x_name: str = "x",
    y_name: str = "y",
    ci_method: str = "BCa",
    min_n: int = MIN_N_CORRELATION,
    min_n_ci: int = MIN_N_CI,
) -> dict:
    """Pearson (+ least-squares line), Spearman and Kendall tau-b of paired values, with CIs.

    Fewer than ``min_n`` pairs or a constant side give NaN and a reason in the ``*_note``
    fields; fewer than ``min_n_ci`` pairs give the estimates without CIs. Pairs are resampled
    together (``paired=True``), each statistic with its own draws from ``rng``.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {c: np.nan for c in CORRELATION_COLUMNS}
    out["n_pairs"] = int(x.size)
    reason = _skip_reason(x, y, x_name, y_name, min_n)
    for name in ("pearson", "spearman", "kendall"):
        out[f"{name}_note"] = reason
    if reason:
        return out
    out["pearson_r"], out["pearson_p"] = (float(v) for v in stats.pearsonr(x, y))
    fit = stats.linregress(x, y)
    out["slope"], out["intercept"] = float(fit.slope), float(fit.intercept)
    sp = stats.spearmanr(x, y)
    out["spearman_rho"], out["spearman_p"] = float(sp.statistic), float(sp.pvalue)
    kt = stats.kendalltau(x, y)
    out["kendall_tau"], out["kendall_p"] = float(kt.statistic), float(kt.pvalue)
    if len(np.unique(x)) < x.size or len(np.unique(y)) < y.size:
        out["spearman_note"] = out["kendall_note"] = "ties (average ranks / tau-b)"
    rng = as_rng(rng)
    for name, statistic in STATISTICS.items():
        low, high, note = bootstrap_interval(
            (x, y), statistic, n_boot=n_boot, ci=ci, method=ci_method, paired=True, rng=rng, min_n=min_n_ci
        )
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
        out[f"{name}_note"] = join_notes(out[f"{name}_note"], note)
    return out


def correlations(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    x: str = "oneshot_score",
    y: str = "arch_score",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """One row per group with ``correlate`` of ``x`` vs ``y`` over its ok trials."""
    cols = as_list(by)
    rows = []
    for labels, g in iter_groups(df, cols):
        xs, ys = ok_pairs(g, x, y)
        rng = group_rng(seed, ("corr", *rng_key(labels)))
        kw = dict(n_boot=n_boot, ci=ci, rng=rng, x_name=x, y_name=y, ci_method=ci_method)
        rows.append({**labels, **correlate(xs, ys, **kw)})
    return pd.DataFrame(rows, columns=cols + CORRELATION_COLUMNS)
