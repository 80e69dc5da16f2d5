"""Small groups are reported as such: NaN and a note below the documented minimum sizes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import harness.stats as hs
from harness.stats._common import group_rng, rng_key
from harness.stats.correlation import STATISTICS

N_BOOT = 300
MIN_CORR, MIN_CI = hs.MIN_N_CORRELATION, hs.MIN_N_CI


def frame(n: int, *, method: str = "das") -> pd.DataFrame:
    """``n`` ok trials with a perfect one-shot/architecture rank agreement (the report's 1.00 case)."""
    arch = np.array([20.3, 18.1, 21.7, 19.2, 17.5, 22.4, 16.9, 20.9][:n])
    return pd.DataFrame(
        {
            "dataset": "blur",
            "space": "sequential",
            "op_set": "all",
            "method": method,
            "hp_set": "H1",
            "status": "ok",
            "arch_score": arch,
            "oneshot_score": np.exp(arch / 2),  # monotone, not linear
        }
    )


def exact_spearman_p(n: int) -> float:
    """Smallest two-sided exact Spearman p-value with n pairs: a perfect order over all n! orders."""
    x = np.arange(n, dtype=float)
    rhos = np.array([stats.spearmanr(x, p).statistic for p in itertools.permutations(x)])
    return float(np.mean(np.abs(rhos) >= 1 - 1e-12))


def test_minimum_sizes_are_the_smallest_that_can_mean_anything():
    # Below MIN_N_CORRELATION no rank correlation can be significant at 5%; at it, one can.
    assert exact_spearman_p(MIN_CORR - 1) == pytest.approx(1 / 12) and exact_spearman_p(MIN_CORR - 1) > 0.05
    assert exact_spearman_p(MIN_CORR) < 0.05

    # Below MIN_N_CI even [min, max] covers the median with probability < 95% (binomial).
    def coverage(n):
        return 1 - 2 * stats.binom.pmf(0, n, 0.5)

    assert coverage(MIN_CI - 1) < 0.95 <= coverage(MIN_CI)


def test_correlation_below_the_minimum_is_nan_with_a_note():
    out = hs.correlations(frame(3), n_boot=N_BOOT).iloc[0]  # the report showed "1.00 [1.00, 1.00], p 0.000"
    for name, value in (("pearson", "pearson_r"), ("spearman", "spearman_rho"), ("kendall", "kendall_tau")):
        assert all(math.isnan(out[c]) for c in (value, f"{name}_p", f"{name}_ci_low", f"{name}_ci_high"))
        assert out[f"{name}_note"] == "too few trials for a correlation (n=3 < 5)"
    assert out["n_pairs"] == 3


@pytest.mark.parametrize("n", [MIN_CORR - 1, MIN_CORR, MIN_CI])
def test_correlation_boundaries_against_scipy(n):
    df = frame(n)
    out = hs.correlations(df, n_boot=N_BOOT).iloc[0]
    x, y = df["oneshot_score"].to_numpy(), df["arch_score"].to_numpy()
    if n < MIN_CORR:
        assert math.isnan(out["spearman_rho"]) and math.isnan(out["spearman_p"])
        assert out["spearman_note"] == f"too few trials for a correlation (n={n} < {MIN_CORR})"
        return
    sp, kt, pr = stats.spearmanr(x, y), stats.kendalltau(x, y), stats.pearsonr(x, y)
    assert (out["spearman_rho"], out["spearman_p"]) == pytest.approx((sp.statistic, sp.pvalue))
    assert (out["kendall_tau"], out["kendall_p"]) == pytest.approx((kt.statistic, kt.pvalue))
    assert (out["pearson_r"], out["pearson_p"]) == pytest.approx((pr.statistic, pr.pvalue))
    if n < MIN_CI:
        assert math.isnan(out["spearman_ci_low"]) and math.isnan(out["spearman_ci_high"])
        assert out["spearman_note"] == f"too few trials for a bootstrap CI (n={n} < {MIN_CI})"
        return
    # Same draws as scipy (Pearson's first). Pearson's BCa is defined; perfectly ordered pairs give
    # rho = 1 on every resample, so Spearman's BCa is not: the percentile interval, and a note.
    # With 6 pairs many resamples are permutations of the sample, whose r equals the sample's up to
    # the last bit, and BCa's bias correction counts those ties; so Pearson's reference uses our
    # statistic (equal to scipy's to 1e-10, see test_rowwise_bootstrap_statistics_match_scipy).
    order = np.lexsort((y, x))  # ok_pairs' canonical order
    x, y = x[order], y[order]
    rng = group_rng(0, ("corr", *rng_key({c: out[c] for c in hs.GROUP_COLUMNS})))
    spearman = lambda a, b, axis=-1: stats.spearmanr(a, b).statistic
    for name, func, method in (("pearson", STATISTICS["pearson"], "BCa"), ("spearman", spearman, "percentile")):
        want = stats.bootstrap(
            (x, y), func, paired=True, vectorized=name == "pearson", n_resamples=N_BOOT, rng=rng, method=method
        ).confidence_interval
        assert (out[f"{name}_ci_low"], out[f"{name}_ci_high"]) == pytest.approx(tuple(want))
    assert out["pearson_note"] == "" and out["spearman_ci_low"] == out["spearman_ci_high"] == 1.0
    assert out["spearman_note"] == "BCa undefined for these data (degenerate): percentile CI"


@pytest.mark.parametrize("n", [1, MIN_CI - 1, MIN_CI])
def test_describe_keeps_descriptive_values_but_no_ci_below_the_minimum(n):
    df = frame(n)
    out = hs.describe_scores(df, n_boot=N_BOOT).iloc[0]
    v = df["arch_score"].to_numpy()
    assert (out["min"], out["max"], out["median"]) == pytest.approx((v.min(), v.max(), np.median(v)))
    if n < MIN_CI:
        for stat in ("mean", "median"):
            assert math.isnan(out[f"{stat}_ci_low"]) and math.isnan(out[f"{stat}_ci_high"])
            assert out[f"{stat}_ci_note"] == f"too few trials for a bootstrap CI (n={n} < {MIN_CI})"
        return
    rng = group_rng(0, {c: out[c] for c in hs.GROUP_COLUMNS})
    for stat, func in (("mean", np.mean), ("median", np.median)):
        want = stats.bootstrap((np.sort(v),), func, n_resamples=N_BOOT, rng=rng).confidence_interval
        assert (out[f"{stat}_ci_low"], out[f"{stat}_ci_high"]) == pytest.approx(tuple(want))
        assert out[f"{stat}_ci_note"] == ""


@pytest.mark.parametrize("n_b", [MIN_CI - 1, MIN_CI])
def test_compare_two_ci_needs_the_minimum_on_both_sides(n_b):
    a = np.array([3.1, 2.2, 4.8, 3.9, 2.7, 3.3, 4.1])
    b = np.array([1.9, 2.5, 0.8, 2.2, 1.4, 3.0][:n_b])
    res = hs.compare_two(a, b, n_boot=N_BOOT, rng=1)
    assert res["mannwhitney_p"] == pytest.approx(stats.mannwhitneyu(a, b).pvalue)  # the test needs no minimum
    if n_b < MIN_CI:
        assert math.isnan(res["median_diff_ci_low"])
        assert res["note"] == f"too few trials for a bootstrap CI (n={n_b} < {MIN_CI})"
        return
    want = stats.bootstrap(
        (a, b), lambda x, y: np.median(x) - np.median(y), vectorized=False, n_resamples=N_BOOT, rng=1
    ).confidence_interval
    assert (res["median_diff_ci_low"], res["median_diff_ci_high"]) == pytest.approx(tuple(want))
