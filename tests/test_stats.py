"""Descriptive statistics, correlations and comparisons against scipy/numpy computed here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import harness.stats as hs
from harness.runner.store import TrialStore, load_trials
from harness.stats._common import group_rng, rng_key
from harness.stats.correlation import _rowwise_kendall, _rowwise_pearson, _rowwise_spearman

N_BOOT = 200


def record(
    i: int,
    *,
    method="das",
    hp_set="H1",
    dataset="blur",
    op_set="good",
    arch=20.0,
    oneshot=15.0,
    status="ok",
    runtime=1.0,
) -> dict:
    return {
        "trial_id": f"t{i}-{dataset}-{op_set}-{method}-{hp_set}",
        "dataset": dataset,
        "space": "sequential",
        "op_set": op_set,
        "method": method,
        "hp_set": hp_set,
        "seed": i,
        "epochs": 2,
        "status": status,
        "failure_reason": "" if status == "ok" else "diverged",
        "metric": "psnr",
        "oneshot_score": oneshot,
        "arch_score": arch,
        "runtime_s": runtime,
        "genotype": ["lgd", "net"],
        "extra": {"op_names": ["lgd", "net"], "positions": ["layer 0", "layer 1"]},
    }


def study(tmp_path, records: list[dict]) -> pd.DataFrame:
    store = TrialStore(tmp_path / "study")
    for r in records:
        store.append_record(r)
    return load_trials(store.folder)


@pytest.fixture
def two_groups(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(20, 2, 30)
    shot_a = 0.5 * a + rng.normal(0, 1, 30)
    b = np.round(rng.normal(18, 3, 25), 1)  # rounded: ties
    recs = [record(i, arch=float(a[i]), oneshot=float(shot_a[i]), runtime=float(i)) for i in range(30)]
    recs += [record(100 + i, method="random", arch=float(b[i]), oneshot=None) for i in range(25)]
    # Failed trials, one even with a (bogus) score: both must stay out of every statistic.
    recs += [record(200, status="failed", arch=None, oneshot=None), record(201, status="failed", arch=99.0)]
    recs += [record(202, method="random", status="failed", arch=None, oneshot=None)]
    return study(tmp_path, recs), a, shot_a, b


def row(df: pd.DataFrame, **labels) -> pd.Series:
    mask = np.ones(len(df), dtype=bool)
    for k, v in labels.items():
        mask &= (df[k] == v).to_numpy()
    assert mask.sum() == 1, labels
    return df[mask].iloc[0]


def test_describe_matches_numpy(two_groups):
    df, a, shot_a, b = two_groups
    out = hs.describe_scores(df, n_boot=N_BOOT)
    das, rnd = row(out, method="das"), row(out, method="random")
    assert (das["n"], das["n_failed"], das["n_ok"]) == (32, 2, 30)
    assert (rnd["n"], rnd["n_failed"], rnd["n_ok"]) == (26, 1, 25)
    for r, v in ((das, a), (rnd, b)):
        assert r["max"] == pytest.approx(v.max())
        assert r["min"] == pytest.approx(v.min())
        assert r["mean"] == pytest.approx(v.mean())
        assert r["median"] == pytest.approx(np.median(v))
        assert r["std"] == pytest.approx(np.std(v, ddof=1))
        assert r["variance"] == pytest.approx(np.var(v, ddof=1))
        assert r["iqr"] == pytest.approx(stats.iqr(v))
    assert das["oneshot_mean"] == pytest.approx(shot_a.mean())
    assert das["oneshot_n"] == 30
    assert (
        rnd["oneshot_n"] == 0
        and math.isnan(rnd["oneshot_mean"])
        and "no oneshot_score" in rnd["oneshot_note"]
    )
    assert das["runtime_mean_s"] == pytest.approx(np.arange(30).mean())


def test_cis_do_not_depend_on_the_order_the_store_holds_the_trials(two_groups):
    """The same trials stored in another order (other batches, or copied from another run) get the
    same CIs; before ok_values/ok_pairs sorted, a bootstrap resampled positions and they differed."""
    df, *_ = two_groups
    shuffled = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert not shuffled["trial_id"].equals(df["trial_id"])
    for stats_of in (
        lambda d: hs.describe_scores(d, n_boot=N_BOOT),
        lambda d: hs.correlations(d, n_boot=N_BOOT),
        lambda d: hs.compare_groups(d, n_boot=N_BOOT),
    ):
        pd.testing.assert_frame_equal(stats_of(df), stats_of(shuffled))


def test_describe_bootstrap_cis(two_groups):
    df, a, _, _ = two_groups
    das = row(hs.describe_scores(df, n_boot=N_BOOT, seed=3), method="das")
    # scipy's bootstrap called directly with the group's generator: mean first, then median,
    # on the values in ascending order (ok_values' canonical order).
    a = np.sort(a)
    rng = group_rng(3, {c: das[c] for c in hs.GROUP_COLUMNS})
    for stat, func in (("mean", np.mean), ("median", np.median)):
        want = stats.bootstrap((a,), func, n_resamples=N_BOOT, rng=rng).confidence_interval
        assert (das[f"{stat}_ci_low"], das[f"{stat}_ci_high"]) == pytest.approx(tuple(want), rel=1e-12)
        assert das[f"{stat}_ci_note"] == ""
    pct = row(hs.describe_scores(df, n_boot=N_BOOT, seed=3, ci_method="percentile"), method="das")
    rng = group_rng(3, {c: das[c] for c in hs.GROUP_COLUMNS})
    for stat, func in (("mean", np.mean), ("median", np.median)):
        want = stats.bootstrap((a,), func, n_resamples=N_BOOT, rng=rng, method="percentile").confidence_interval
        assert (pct[f"{stat}_ci_low"], pct[f"{stat}_ci_high"]) == pytest.approx(tuple(want), rel=1e-12)
    # ... and the percentile CI agrees with a plain loop on another generator up to Monte-Carlo error.
    legacy = np.random.RandomState(0)
    loop = [np.mean(legacy.choice(a, a.size, replace=True)) for _ in range(4000)]
    low, high = hs.bootstrap_ci(a, "mean", n_boot=4000, rng=1, method="percentile")
    assert (low, high) == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])), abs=0.15)


def test_describe_seeded_and_group_independent(two_groups):
    df, *_ = two_groups
    first = hs.describe_scores(df, n_boot=N_BOOT, seed=5)
    again = hs.describe_scores(df, n_boot=N_BOOT, seed=5)
    pd.testing.assert_frame_equal(first, again)
    only_das = hs.describe_scores(df[df["method"] == "das"], n_boot=N_BOOT, seed=5)
    assert only_das["median_ci_low"].iloc[0] == row(first, method="das")["median_ci_low"]


def test_describe_edge_cases(tmp_path):
    recs = [
        record(0, method="one", arch=5.0),
        record(1, method="two", arch=5.0),
        record(2, method="two", arch=7.0),
    ]
    recs += [record(10 + i, method="const", arch=3.0) for i in range(6)]
    recs += [record(20 + i, method="dead", status="failed", arch=None) for i in range(3)]
    recs += [record(30, method="nohp", hp_set=None, arch=1.0)]
    out = hs.describe_scores(study(tmp_path, recs), n_boot=N_BOOT)
    one = row(out, method="one")
    assert (
        one["n_ok"] == 1 and one["max"] == 5.0 and math.isnan(one["std"]) and math.isnan(one["median_ci_low"])
    )
    assert one["median_ci_note"] == "too few trials for a bootstrap CI (n=1 < 6)"
    assert math.isnan(row(out, method="two")["median_ci_high"])
    const = row(out, method="const")  # BCa is undefined for constant data: percentile, and says so
    assert const["std"] == 0.0 and const["median_ci_low"] == const["median_ci_high"] == 3.0
    assert const["mean_ci_low"] == const["mean_ci_high"] == 3.0
    assert "BCa undefined" in const["median_ci_note"] and "percentile" in const["median_ci_note"]
    dead = row(out, method="dead")
    assert (dead["n"], dead["n_failed"], dead["n_ok"]) == (3, 3, 0) and math.isnan(dead["mean"])
    assert "no ok trials" in dead["note"]
    assert row(out, method="nohp")["hp_set"] == "-"  # a missing label is kept as '-', not dropped


def test_describe_empty_frame():
    out = hs.describe_scores(pd.DataFrame(columns=[*hs.GROUP_COLUMNS, "status", "arch_score"]))
    assert out.empty and {"n", "n_failed", "median"} <= set(out.columns)


def test_correlations_match_scipy(two_groups):
    df, a, shot_a, _ = two_groups
    out = hs.correlations(df, n_boot=N_BOOT)
    das = row(out, method="das")
    r, p = stats.pearsonr(shot_a, a)
    fit = stats.linregress(shot_a, a)
    assert (das["pearson_r"], das["pearson_p"]) == pytest.approx((r, p))
    assert (das["slope"], das["intercept"]) == pytest.approx((fit.slope, fit.intercept))
    sp = stats.spearmanr(shot_a, a)
    assert (das["spearman_rho"], das["spearman_p"]) == pytest.approx((sp.statistic, sp.pvalue))
    kt = stats.kendalltau(shot_a, a)
    assert (das["kendall_tau"], das["kendall_p"]) == pytest.approx((kt.statistic, kt.pvalue))
    assert das["n_pairs"] == 30
    # Paired BCa CIs equal scipy's bootstrap of scipy's statistics, drawn in the same order, on the
    # pairs sorted by one-shot then architecture score (ok_pairs' canonical order).
    order = np.lexsort((a, shot_a))
    shot_a, a = shot_a[order], a[order]
    rng = group_rng(0, ("corr", *rng_key({c: das[c] for c in hs.GROUP_COLUMNS})))
    for name, func in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        want = stats.bootstrap(
            (shot_a, a), lambda x, y, f=func: f(x, y)[0], paired=True, vectorized=False, n_resamples=N_BOOT, rng=rng
        ).confidence_interval
        assert (das[f"{name}_ci_low"], das[f"{name}_ci_high"]) == pytest.approx(tuple(want), rel=1e-9)
        assert das[f"{name}_note"] == ""
    rnd = row(out, method="random")
    assert (
        rnd["n_pairs"] == 0
        and math.isnan(rnd["spearman_rho"])
        and "no trials with both" in rnd["spearman_note"]
    )


def test_rowwise_bootstrap_statistics_match_scipy():
    rng = np.random.default_rng(2)
    x, y = np.round(rng.normal(size=12), 1), np.round(rng.normal(size=12), 1)
    idx = rng.integers(0, 12, (20, 12))  # resamples: many ties
    bx, by = x[idx], y[idx]
    for func, ref in (
        (_rowwise_pearson, stats.pearsonr),
        (_rowwise_spearman, stats.spearmanr),
        (_rowwise_kendall, stats.kendalltau),
    ):
        got = func(bx, by)
        want = [ref(bx[i], by[i])[0] for i in range(20)]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_correlation_edge_cases(tmp_path):
    recs = [record(i, method="small", arch=float(i), oneshot=float(i)) for i in range(2)]
    recs += [record(10 + i, method="flat", arch=float(i), oneshot=4.0) for i in range(5)]
    ties_x, ties_y = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0], [1.0, 2.0, 2.0, 3.0, 3.0, 3.0]
    recs += [record(20 + i, method="ties", arch=ties_y[i], oneshot=ties_x[i]) for i in range(6)]
    recs += [
        record(30 + i, method="nan", arch=float(i), oneshot=None if i % 2 else float(i)) for i in range(10)
    ]
    recs += [record(40 + i, method="dead", status="failed", arch=None, oneshot=1.0) for i in range(4)]
    out = hs.correlations(study(tmp_path, recs), n_boot=N_BOOT)
    small = row(out, method="small")
    assert math.isnan(small["pearson_r"]) and small["pearson_note"] == "too few trials for a correlation (n=2 < 5)"
    flat = row(out, method="flat")
    assert math.isnan(flat["spearman_rho"]) and flat["spearman_note"] == "constant oneshot_score"
    ties = row(out, method="ties")
    assert ties["spearman_rho"] == pytest.approx(stats.spearmanr(ties_x, ties_y).statistic)
    assert ties["kendall_tau"] == pytest.approx(stats.kendalltau(ties_x, ties_y).statistic)
    assert "ties" in ties["spearman_note"]
    nan = row(out, method="nan")
    assert nan["n_pairs"] == 5  # trials without a one-shot score are left out of the pairs
    assert nan["pearson_r"] == pytest.approx(1.0)
    assert math.isnan(nan["pearson_ci_low"]) and nan["pearson_note"] == "too few trials for a bootstrap CI (n=5 < 6)"
    dead = row(out, method="dead")
    assert dead["n_pairs"] == 0 and math.isnan(dead["kendall_tau"])


def test_summary_table_joins(two_groups):
    df, *_ = two_groups
    out = hs.summary_table(df, n_boot=50)
    assert len(out) == 2
    required = {
        "n",
        "n_failed",
        "max",
        "mean",
        "median",
        "std",
        "median_ci_low",
        "median_ci_high",
        "spearman_rho",
        "spearman_p",
        "pearson_r",
        "kendall_tau",
        "runtime_mean_s",
    }
    assert required <= set(out.columns)
    by_dataset = hs.summary_table(df, by="dataset", n_boot=50)
    assert by_dataset["n"].tolist() == [len(df)]


def test_prob_superiority_and_compare_two():
    rng = np.random.default_rng(4)
    a, b = np.round(rng.normal(1, 1, 15), 1), np.round(rng.normal(0, 1, 12), 1)
    brute = sum((x > y) + 0.5 * (x == y) for x, y in itertools.product(a, b)) / (a.size * b.size)
    assert hs.prob_superiority(a, b) == pytest.approx(brute)
    res = hs.compare_two(a, b, n_boot=N_BOOT, rng=0)
    mw = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert (res["mannwhitney_u"], res["mannwhitney_p"]) == pytest.approx((mw.statistic, mw.pvalue))
    assert res["prob_a_beats_b"] == pytest.approx(mw.statistic / (a.size * b.size))
    assert res["median_diff"] == pytest.approx(np.median(a) - np.median(b))
    # A and B resampled independently by scipy (BCa over both samples), same seed.
    want = stats.bootstrap(
        (a, b), lambda x, y: np.median(x) - np.median(y), vectorized=False, n_resamples=N_BOOT, rng=0
    ).confidence_interval
    assert (res["median_diff_ci_low"], res["median_diff_ci_high"]) == pytest.approx(tuple(want), rel=1e-12)


def test_compare_two_edge_cases():
    assert hs.compare_two(np.array([]), np.array([1.0, 2.0]))["note"] == "a side has no ok trials"
    same = hs.compare_two(np.full(4, 2.0), np.full(5, 2.0), n_boot=N_BOOT)
    assert (
        math.isnan(same["mannwhitney_p"])
        and same["prob_a_beats_b"] == 0.5
        and "all values equal" in same["note"]
    )
    small = hs.compare_two(np.array([1.0, 2.0]), np.array([0.0, 3.0, 4.0]), n_boot=N_BOOT)
    assert math.isnan(small["median_diff_ci_low"]) and small["note"] == "too few trials for a bootstrap CI (n=2 < 6)"
    assert not math.isnan(small["mannwhitney_p"])


def test_compare_groups(two_groups):
    df, a, _, b = two_groups
    out = hs.compare_groups(df, n_boot=N_BOOT)
    assert len(out) == 1
    r = out.iloc[0]
    assert (r["a"], r["b"]) == ("das/H1", "random/H1")
    assert (r["n_a"], r["n_b"], r["n_failed_a"], r["n_failed_b"]) == (30, 25, 2, 1)
    assert r["mannwhitney_p"] == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    flipped = hs.compare_groups(
        df, between="method", pairs=[("random", "das"), ("das", "nope")], n_boot=N_BOOT
    )
    assert len(flipped) == 1 and flipped.iloc[0]["a"] == "random"
    assert flipped.iloc[0]["prob_a_beats_b"] == pytest.approx(1 - r["prob_a_beats_b"])


def test_compare_groups_counts_seeds_where_both_rows_returned_the_same_architecture(tmp_path):
    recs = []
    for seed in range(6):
        recs.append({**record(seed, method="das"), "genotype": ["lgd", "net", "net"]})
        other = ["lgd", "net", "net"] if seed < 4 else ["net", "net", "lgd"]  # seeds 4, 5 differ
        recs.append({**record(seed, method="darts", status="failed" if seed == 0 else "ok"), "genotype": other})
    recs.append({**record(9, method="darts"), "genotype": ["lgd", "net", "net"]})  # no das trial of seed 9
    out = hs.compare_groups(study(tmp_path, recs), n_boot=0)
    r = out.iloc[0]
    # Paired: seeds 1-5 (seed 0 failed in darts, seed 9 has no das trial); the same: seeds 1-3.
    assert ({r["a"], r["b"]}, r["n_paired"], r["n_same_genotype"]) == ({"das/H1", "darts/H1"}, 5, 3)
    # Cell-space genotypes are nested; equal ones count as the same whatever the dict order.
    cell = {"normal": [["sep_conv_3x3", 0]], "reduce": [["max_pool_3x3", 1]]}
    a = pd.DataFrame({"seed": [0], "genotype": [cell], "status": ["ok"]})
    b = pd.DataFrame({"seed": [0], "genotype": [dict(reversed(list(cell.items())))], "status": ["ok"]})
    assert hs.genotype_agreement(a, b) == (1, 1)
