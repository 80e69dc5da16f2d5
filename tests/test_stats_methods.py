"""Method ranking and per-method diagnostics, checked against direct pandas/numpy computations."""

import itertools

import numpy as np
import pandas as pd

from harness.report import write_report
from harness.runner.store import TrialStore
from harness.spaces.distance import architecture_distance
from harness.stats.methods import diagnostics, method_ranking, seed_diversity
from harness.stats.synthetic import synthetic_records

SEARCH = ("das", "fair-darts", "gdas", "darts-pt")


def _records():
    """Synthetic DAS records copied to several search methods, each with shifted scores and a
    Hessian eigenvalue in ``extra`` as the search loop records it."""
    base = synthetic_records(datasets=("blur",), op_sets=("all",), methods=("das", "random"), n_seeds=9, seed=3)
    rng = np.random.default_rng(0)
    out = []
    for shift, method in enumerate(SEARCH):
        for rec in base:
            if rec["method"] != "das":
                continue
            copy = {**rec, "method": method, "extra": {**rec["extra"], "hessian_eigenvalue": float(rng.gamma(2.0))}}
            copy["trial_id"] = rec["trial_id"].replace("-das-", f"-{method}-")
            if copy["arch_score"] is not None:
                copy["arch_score"] = rec["arch_score"] + 0.7 * shift
            out.append(copy)
    return out + [r for r in base if r["method"] == "random"]


def _frame(tmp_path):
    store = TrialStore(tmp_path)
    for rec in _records():
        store.append_record(rec)
    return store.dataframe()


def test_ranking_orders_methods_by_median_and_counts_failures(tmp_path):
    df = _frame(tmp_path)
    ranking = method_ranking(df, n_boot=200)
    ok = df[df["status"] == "ok"]
    medians = ok.groupby("method")["arch_score"].median().sort_values(ascending=False)
    assert list(ranking["method"]) == list(medians.index)
    assert list(ranking["rank"]) == list(range(1, len(medians) + 1))
    failed = df[df["status"] != "ok"].groupby("method").size()
    for _, row in ranking.iterrows():
        assert row["n_failed"] == failed.get(row["method"], 0)
        assert row["median_ci_low"] <= row["median"] <= row["median_ci_high"]
    assert bool(ranking.set_index("method").loc["random", "baseline"])


def test_diagnostics_match_direct_computation(tmp_path):
    df = _frame(tmp_path)
    diag = diagnostics(df).set_index("method")
    for method in SEARCH:
        group = df[(df["method"] == method) & (df["status"] == "ok")]
        expected = np.median([e["hessian_eigenvalue"] for e in group["extra"]])
        assert np.isclose(diag.loc[method, "hessian_median"], expected)
        assert np.isclose(diag.loc[method, "param_free_mean"], group["n_param_free_ops"].mean())


def test_seed_diversity_is_the_mean_pairwise_distance(tmp_path):
    df = _frame(tmp_path)
    group = df[df["method"] == "random"]
    ok = group[group["status"] == "ok"]
    ops = ok["extra"].iloc[0]["op_names"]
    pairs = [architecture_distance(a, b, ops) for a, b in itertools.combinations(ok["genotype"], 2)]
    assert np.isclose(seed_diversity(group), np.mean(pairs))
    same = pd.DataFrame({"status": ["ok"] * 3, "genotype": [["lgd"] * 10] * 3, "extra": [{"op_names": ops}] * 3})
    assert seed_diversity(same) == 0.0
    assert np.isnan(seed_diversity(same.iloc[:1]))


def test_report_ranks_methods_with_a_figure(tmp_path):
    df = _frame(tmp_path)
    written = write_report(tmp_path, n_boot=100)
    assert "methods_ranking.csv" in written and "figures/methods_blur.png" in written
    text = (tmp_path / "summary.md").read_text()
    assert "Methods ranked by median architecture score" in text
    saved = pd.read_csv(tmp_path / "methods_ranking.csv")
    best = df[df["status"] == "ok"].groupby("method")["arch_score"].median().idxmax()
    assert saved.iloc[0]["method"] == best and saved.iloc[0]["rank"] == 1
