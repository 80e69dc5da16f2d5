"""Random-search steps, seed budget and genotype statistics against direct computations."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

import harness.stats as hs
from harness.runner.store import TrialStore, load_trials
from harness.stats.synthetic import synthetic_records, write_synthetic_study


def trial(i: int, method: str, arch: float | None, *, op_set="all", status="ok", hp_set="H1") -> dict:
    return {
        "trial_id": f"{method}-{op_set}-{hp_set}-{i}",
        "dataset": "blur",
        "space": "sequential",
        "op_set": op_set,
        "method": method,
        "hp_set": hp_set,
        "seed": i,
        "status": status,
        "arch_score": arch,
        "oneshot_score": None,
    }


def study(tmp_path, records) -> pd.DataFrame:
    store = TrialStore(tmp_path / "s")
    for r in records:
        store.append_record(r)
    return load_trials(store.folder)


def test_expected_steps_formulas():
    assert hs.expected_steps(75, 3, replace=True) == pytest.approx(25.0)
    assert hs.expected_steps(75, 3, replace=False) == pytest.approx(76 / 4)
    assert math.isnan(hs.expected_steps(75, 0))


def test_steps_to_beat_simulation_converges():
    pool = np.arange(20, dtype=float)  # 3 values (17, 18, 19) beat 16.5
    with_repl = hs.steps_to_beat(pool, 16.5, n_runs=4000, replace=True, rng=0)
    without = hs.steps_to_beat(pool, 16.5, n_runs=4000, replace=False, rng=0)
    assert with_repl.mean() == pytest.approx(20 / 3, rel=0.06)
    assert without.mean() == pytest.approx(21 / 4, rel=0.06)
    assert without.max() <= 18  # at most 17 misses before a hit
    assert np.all(hs.steps_to_beat(pool, -1.0, n_runs=5) == 1)
    assert np.isnan(hs.steps_to_beat(pool, 100.0, n_runs=5)).all()  # censored
    capped = hs.steps_to_beat(np.array([0.0] * 999 + [1.0]), 0.5, n_runs=50, max_steps=10, rng=1)
    assert np.isnan(capped).sum() > 40


def test_random_search_steps_table(tmp_path):
    rng = np.random.default_rng(0)
    das = rng.normal(18.5, 2, 15)
    rand = rng.normal(10, 5, 40)
    recs = [trial(i, "das", float(v)) for i, v in enumerate(das)]
    recs += [trial(i, "das", float(v), hp_set="H2") for i, v in enumerate(das + 1)]
    recs += [trial(100 + i, "random", float(v)) for i, v in enumerate(rand)]
    recs += [trial(200 + i, "random", None, status="failed") for i in range(5)]
    recs += [trial(300 + i, "das", 1.0, op_set="good") for i in range(3)]  # no random pool here
    df = study(tmp_path, recs)
    out = hs.random_search_steps(df, n_runs=10, seed=1)
    h1 = out[(out["op_set"] == "all") & (out["reference"] == "das/H1")].iloc[0]
    target = float(np.median(das))
    assert h1["target"] == pytest.approx(target)
    assert (h1["n_pool"], h1["n_pool_failed"]) == (45, 5)
    assert h1["n_better"] == int((rand > target).sum())
    assert h1["p_better"] == pytest.approx(
        (rand > target).sum() / 45
    )  # failed trials are non-improving draws
    assert h1["expected_steps"] == pytest.approx(45 / (rand > target).sum())
    steps = [float(s) for s in h1["steps"].split(",") if s != "censored"]
    assert h1["mean_steps"] == pytest.approx(np.mean(steps))
    assert h1["n_runs"] == 10 and h1["n_censored"] == 10 - len(steps)
    assert set(out["reference"]) == {"das/H1", "das/H2"}
    good = out[out["op_set"] == "good"].iloc[0]
    assert "no random trials" in good["note"] and good["n_censored"] == 10

    no_failed = hs.random_search_steps(df, count_failed=False, n_runs=10)
    assert no_failed.iloc[0]["p_better"] == pytest.approx((rand > target).sum() / 40)
    fixed = hs.random_search_steps(df, target=1e9, n_runs=3)
    assert len(fixed) == 1 and fixed.iloc[0]["reference"] == "fixed"
    assert fixed.iloc[0]["n_censored"] == 3 and "censored" in fixed.iloc[0]["note"]


def test_fit_inverse_sqrt_recovers_c():
    n = np.array([5, 10, 20, 40, 80])
    assert hs.fit_inverse_sqrt(n, 3.0 / np.sqrt(n)) == pytest.approx(3.0)


def test_seed_budget_normal_data(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.normal(20, 1, 60)
    recs = [trial(i, "das", float(v)) for i, v in enumerate(values)]
    recs += [trial(100 + i, "das", None, status="failed") for i in range(6)]
    recs += [trial(200 + i, "random", 7.0) for i in range(8)]  # constant
    recs += [trial(300 + i, "nets-only", float(i)) for i in range(3)]  # too few
    df = study(tmp_path, recs)
    curve = hs.ci_width_curve(df, n_boot=200, n_repeats=8, seed=0)
    out = hs.seed_budget(df, target_width=0.5, n_boot=200, n_repeats=8, seed=0, curve=curve)
    das = out[out["method"] == "das"].iloc[0]
    # Median of N(0, 1): CI width ~ 2 * 1.96 * sqrt(pi / 2) / sqrt(n) = 4.91 / sqrt(n).
    assert das["c"] == pytest.approx(4.91, rel=0.35)
    assert das["n_needed"] == math.ceil((das["c"] / 0.5) ** 2)
    assert das["n_trials_needed"] == math.ceil(das["n_needed"] * 66 / 60)
    assert das["enough"] == (66 >= das["n_trials_needed"])
    sub = curve[curve["method"] == "das"]
    assert sub["n"].max() == 60 and sub["width_mean"].iloc[0] > sub["width_mean"].iloc[-1]
    const = out[out["method"] == "random"].iloc[0]
    assert const["c"] == 0 and "constant" in const["note"]
    few = out[out["method"] == "nets-only"].iloc[0]
    assert math.isnan(few["n_needed"]) and few["note"] == "too few trials for a CI-width estimate (n_ok=3 < 6)"
    again = hs.seed_budget(df, target_width=0.5, n_boot=200, n_repeats=8, seed=0)
    pd.testing.assert_frame_equal(out, again)


def test_op_frequencies_match_counter(tmp_path):
    records = synthetic_records(
        datasets=("blur",), spaces=("sequential", "nonsequential"), methods=("das",), n_seeds=6, fail_rate=0.2
    )
    assert write_synthetic_study(tmp_path / "w", n_seeds=1).joinpath("trials.jsonl").exists()
    df = study(tmp_path, records)
    out = hs.op_frequencies(df)
    for (space, op_set), g in df[df["status"] == "ok"].groupby(["space", "op_set"]):
        flat = [hs.flatten_genotype(x) for x in g["genotype"]]
        assert all(len(f) == (10 if space == "sequential" else 30) for f in flat)
        part = out[(out["space"] == space) & (out["op_set"] == op_set)]
        for pos in (0, len(flat[0]) - 1):
            want = Counter(f[pos] for f in flat)
            got = part[part["position_index"] == pos].set_index("op")["count"].to_dict()
            assert got == dict(want)
            assert part[part["position_index"] == pos]["freq"].sum() == pytest.approx(1.0)
        assert (part["n_genotypes"] == len(g)).all()
    assert out[out["space"] == "nonsequential"]["position"].iloc[0].startswith("cell 1 edge")


def test_alpha_probabilities_softmax():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(4, 10, 3))
    rec = {"alpha_history": history.tolist(), "extra": {"op_names": ["a", "b", "c"]}}
    probs, ops, positions = hs.alpha_probabilities(rec)
    np.testing.assert_allclose(probs, softmax(history, axis=2))
    assert ops == ["a", "b", "c"] and positions[0] == "pos 0"
    assert hs.alpha_probabilities({"alpha_history": None}) is None
    assert hs.alpha_probabilities({"alpha_history": [[[1.0, 2.0], [1.0]]]}) is None  # ragged
