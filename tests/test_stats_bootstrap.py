"""Bootstrap CIs are scipy.stats.bootstrap's: same seed, same data, same interval; never an exception."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import harness.stats as hs
from harness.stats._common import bootstrap_batch, bootstrap_interval

N_BOOT = 400


def scipy_ci(samples, statistic, *, seed=0, method="BCa", **kw) -> tuple[float, float]:
    res = stats.bootstrap(samples, statistic, n_resamples=N_BOOT, rng=np.random.default_rng(seed), method=method, **kw)
    return tuple(float(v) for v in res.confidence_interval)


@pytest.mark.parametrize("method", hs.CI_METHODS)
@pytest.mark.parametrize("name, func", [("mean", np.mean), ("median", np.median), ("std", None)])
def test_one_sample_equals_scipy(method, name, func):
    x = np.random.default_rng(1).gamma(2.0, 3.0, 25)  # skewed, where BCa and percentile differ
    func = func or (lambda a, axis=-1: np.std(a, axis=axis, ddof=1))
    low, high, note = bootstrap_interval((x,), name, n_boot=N_BOOT, method=method, rng=5)
    assert (low, high) == pytest.approx(scipy_ci((x,), func, seed=5, method=method), rel=1e-12)
    assert note == ""
    assert hs.bootstrap_ci(x, name, n_boot=N_BOOT, method=method, rng=5) == (low, high)


def test_paired_and_two_sample_equal_scipy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)

    def mean_diff(a, b, axis=-1):
        return np.mean(a - b, axis=axis)

    got = bootstrap_interval((x, y), mean_diff, n_boot=N_BOOT, paired=True, rng=3)
    assert got[:2] == pytest.approx(scipy_ci((x, y), mean_diff, seed=3, paired=True), rel=1e-12)
    b = rng.normal(size=11)
    got = bootstrap_interval((x, b), mean_diff_unpaired, n_boot=N_BOOT, rng=3)
    assert got[:2] == pytest.approx(scipy_ci((x, b), mean_diff_unpaired, seed=3), rel=1e-12)


def mean_diff_unpaired(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def test_seeded_with_a_generator_is_deterministic():
    x = np.random.default_rng(0).normal(size=30)
    first = bootstrap_interval((x,), "median", rng=np.random.default_rng(9))
    assert first == bootstrap_interval((x,), "median", rng=np.random.default_rng(9))
    assert first != bootstrap_interval((x,), "median", rng=np.random.default_rng(10))


def test_constant_data_gives_a_degenerate_interval_with_a_note():
    exact = np.full(10, 4.0)
    with pytest.warns(stats.DegenerateDataWarning), np.errstate(invalid="ignore"):  # scipy's own BCa: NaN
        assert all(math.isnan(v) for v in scipy_ci((exact,), np.mean))
    rounded = np.full(10, 4.2)  # resampled means differ in the last bit: scipy's BCa is rounding noise
    for x in (exact, rounded):
        for statistic in ("mean", "median"):
            low, high, note = bootstrap_interval((x,), statistic, n_boot=N_BOOT, rng=0)
            assert low == pytest.approx(x[0]) and high == pytest.approx(x[0])
            assert note == "BCa undefined for these data (degenerate): percentile CI"
    assert bootstrap_interval((exact,), "mean", n_boot=N_BOOT, method="percentile", rng=0) == (4.0, 4.0, "")


def test_bca_fallback_is_scipy_percentile_on_the_same_resamples():
    x = np.array([1.0] * 9 + [2.0])  # not constant, but every jackknife median is 1: no acceleration
    low, high, note = bootstrap_interval((x,), "median", n_boot=N_BOOT, rng=4)
    assert note == "BCa undefined for these data (degenerate): percentile CI"
    assert (low, high) == pytest.approx(scipy_ci((x,), np.median, seed=4, method="percentile"))


def test_resamples_without_a_value_are_left_out_and_said():
    x = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # a third of the resamples are all zeros: no correlation
    y = np.arange(6.0)

    def pearson(a, b, axis=-1):
        with np.errstate(invalid="ignore", divide="ignore"):
            return stats.pearsonr(a, b, axis=axis).statistic

    low, high, note = bootstrap_interval((x, y), pearson, n_boot=N_BOOT, paired=True, rng=1)
    with np.errstate(invalid="ignore"), pytest.warns(stats.DegenerateDataWarning):
        res = stats.bootstrap((x, y), pearson, paired=True, n_resamples=N_BOOT, rng=np.random.default_rng(1))
    boot = res.bootstrap_distribution
    defined = boot[np.isfinite(boot)]
    assert 0 < defined.size < N_BOOT
    assert (low, high) == pytest.approx(tuple(np.percentile(defined, [2.5, 97.5])))
    assert note == f"percentile CI over the {defined.size} of {N_BOOT} resamples where it is defined"


def test_undefined_statistic_and_bad_samples_give_nan_not_an_exception():
    x = np.arange(8.0)
    low, high, note = bootstrap_interval((x,), lambda a, axis=-1: np.full(np.shape(a)[:-1], np.nan), rng=0)
    assert math.isnan(low) and math.isnan(high) and "undefined on every resample" in note
    low, high, note = bootstrap_interval((np.array([1.0]),), "mean", min_n=1)
    assert math.isnan(low) and "no bootstrap CI" in note
    assert bootstrap_interval((x,), "mean", n_boot=0) == (pytest.approx(np.nan, nan_ok=True),) * 2 + ("",)
    with pytest.raises(ValueError, match="CI method"):  # a typo in the configuration is an error
        bootstrap_interval((x,), "mean", method="bca")


def test_min_n_boundary():
    x = np.random.default_rng(3).normal(size=hs.MIN_N_CI)
    low, high, note = bootstrap_interval((x[:-1],), "median", n_boot=N_BOOT, rng=0)
    assert math.isnan(low) and math.isnan(high)
    assert note == f"too few trials for a bootstrap CI (n={hs.MIN_N_CI - 1} < {hs.MIN_N_CI})"
    low, high, note = bootstrap_interval((x,), "mean", n_boot=N_BOOT, rng=0)
    assert (low, high) == pytest.approx(scipy_ci((x,), np.mean)) and note == ""


def test_large_samples_are_resampled_in_batches():
    x = np.random.default_rng(4).normal(size=3000)
    batch = bootstrap_batch(x.size)
    assert batch * x.size <= 4_000_000 and batch < 4 * N_BOOT  # memory stays bounded
    got = bootstrap_interval((x,), "mean", n_boot=4 * N_BOOT, rng=2)
    want = stats.bootstrap((x,), np.mean, n_resamples=4 * N_BOOT, batch=batch, rng=np.random.default_rng(2))
    assert got[:2] == pytest.approx(tuple(want.confidence_interval), rel=1e-12)


def test_bootstrap_distribution_is_scipys():
    x = np.random.default_rng(5).normal(size=15)
    got = hs.bootstrap_distribution(x, "median", n_boot=50, rng=6)
    res = stats.bootstrap((x,), np.median, n_resamples=50, rng=np.random.default_rng(6), method="percentile")
    np.testing.assert_array_equal(got, res.bootstrap_distribution)
    assert hs.bootstrap_distribution(x[:1], n_boot=50).size == 0
