"""Grouping by a row's full identity: rows that differ only in variant or epochs are never pooled."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import harness.stats as hs
from harness.stats._common import group_rng
from harness.stats.methods import method_ranking


def trials(method: str, variant: str | None, arch, oneshot=None, *, epochs=10, hp_set="H1", **extra) -> pd.DataFrame:
    """One row's trials as the trials table has them (``variant=None``: no such column)."""
    arch = np.asarray(arch, dtype=float)
    frame = pd.DataFrame(
        {
            "dataset": "blur",
            "space": "sequential",
            "op_set": "all",
            "method": method,
            "hp_set": hp_set,
            "epochs": epochs,
            "seed": np.arange(arch.size),
            "status": "ok",
            "arch_score": arch,
            "oneshot_score": np.nan if oneshot is None else np.asarray(oneshot, dtype=float),
            **extra,
        }
    )
    if variant is not None:
        frame["variant"] = variant
    return frame


@pytest.fixture
def variants() -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(7)
    data = {}
    for variant, n in (("-", 9), ("param_lr=0.1", 7)):
        arch = rng.normal(20, 2, n)
        data[variant] = (arch, arch + rng.normal(0, 1, n))
    df = pd.concat([trials("random", v, *data[v]) for v in data], ignore_index=True)
    return df, data


def by_variant(out: pd.DataFrame) -> dict[str, pd.Series]:
    assert out["variant"].is_unique
    return {r["variant"]: r for _, r in out.iterrows()}


def test_rows_differing_only_in_variant_are_separate_groups(variants):
    df, data = variants
    desc = by_variant(hs.describe_scores(df, n_boot=100))
    corr = by_variant(hs.correlations(df, n_boot=100))
    summary = by_variant(hs.summary_table(df, n_boot=100))
    assert set(desc) == set(corr) == set(summary) == set(data)
    for variant, (arch, shot) in data.items():
        assert desc[variant]["n"] == summary[variant]["n"] == arch.size
        assert corr[variant]["n_pairs"] == summary[variant]["n_pairs"] == arch.size
        assert summary[variant]["median"] == pytest.approx(np.median(arch))
        assert summary[variant]["spearman_rho"] == pytest.approx(stats.spearmanr(shot, arch).statistic)
        assert desc[variant]["epochs"] == 10


def test_rows_differing_only_in_epochs_are_separate_groups():
    df = pd.concat([trials("das", "-", [1.0, 2, 3]), trials("das", "-", [5.0, 6], epochs=50)], ignore_index=True)
    out = hs.describe_scores(df, n_boot=0, oneshot=None)
    assert out[["epochs", "n", "median"]].values.tolist() == [[10, 3, 2.0], [50, 2, 5.5]]


def test_absent_epochs_and_variant_are_one_group_labelled_dash():
    df = trials("das", None, [1.0, 2, 3, 4]).drop(columns="epochs")
    out = hs.describe_scores(df, n_boot=0, oneshot=None)
    assert len(out) == 1 and (out.iloc[0]["epochs"], out.iloc[0]["variant"], out.iloc[0]["n"]) == ("-", "-", 4)
    assert list(out.columns[: len(hs.GROUP_COLUMNS)]) == list(hs.GROUP_COLUMNS)
    with pytest.raises(KeyError, match="hp_set"):  # any other missing grouping column is an error
        hs.describe_scores(df.drop(columns="hp_set"))


def test_group_rng_does_not_depend_on_the_label_dtype():
    a, b = group_rng(1, {"epochs": np.int64(10)}), group_rng(1, {"epochs": 10})
    assert a.integers(0, 1 << 30) == b.integers(0, 1 << 30)


def test_method_ranking_merges_diagnostics_per_variant(variants):
    df, data = variants
    df["hessian_eigenvalue"] = np.arange(len(df), dtype=float)
    ranking = method_ranking(df, n_boot=100)
    assert len(ranking) == 2 and {"epochs", "variant", "median_ci_note", "spearman_note"} <= set(ranking.columns)
    for _, r in ranking.iterrows():
        want = df.loc[df["variant"] == r["variant"], "hessian_eigenvalue"].median()
        assert r["hessian_median"] == want and r["n"] == data[r["variant"]][0].size
    best = max(data, key=lambda v: np.median(data[v][0]))
    assert ranking.iloc[0]["variant"] == best and ranking.iloc[0]["rank"] == 1


def test_compare_groups_refuses_to_pool_variants(variants):
    df, data = variants
    das = trials("das", "-", np.linspace(15, 25, 8))
    both = pd.concat([df, das], ignore_index=True)
    pooled = hs.compare_groups(both, n_boot=100)
    assert len(pooled) == 1 and math.isnan(pooled.iloc[0]["mannwhitney_p"])
    assert "random/H1 mixes variant -, param_lr=0.1" in pooled.iloc[0]["note"]
    split = hs.compare_groups(both, between=("method", "hp_set", "variant"), n_boot=100)
    want = {("das/H1/-", v): stats.mannwhitneyu(das["arch_score"], data[v][0]).pvalue for v in data}
    got = {
        (r["a"], r["b"].replace("random/H1/", "")): r["mannwhitney_p"]
        for _, r in split.iterrows()
        if r["a"][:3] == "das"
    }
    assert got == pytest.approx(want)
    per_variant = hs.compare_groups(both, by=("dataset", "variant"), n_boot=100)
    assert len(per_variant) == 1 and per_variant.iloc[0]["variant"] == "-"


def test_random_search_steps_refuses_to_pool_variants(variants):
    df, data = variants
    both = pd.concat([df, trials("das", "-", np.full(8, 19.0))], ignore_index=True)
    mixed = hs.random_search_steps(both, n_runs=5)
    assert len(mixed) == 1 and math.isnan(mixed.iloc[0]["p_better"])
    assert "random trials mixes variant -, param_lr=0.1: not pooled" in mixed.iloc[0]["note"]
    split = hs.random_search_steps(both, by=("dataset", "space", "op_set", "variant"), n_runs=5)
    plain = split[split["variant"] == "-"].iloc[0]
    assert plain["p_better"] == pytest.approx((data["-"][0] > 19.0).mean())
