"""Statistics per metric: a study that mixes metrics is split by them, and "best" follows each
metric's direction (higher PSNR or accuracy, lower ``params_m``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import harness.stats as hs
from harness.stats.compare import compare_two
from harness.stats.methods import method_ranking
from harness.stats.search import steps_to_beat
from harness.tasks.metrics import METRICS, find_metric, metric_label


def trials(dataset: str, metric: str | None, method: str, scores, *, status: str = "ok", **extra) -> pd.DataFrame:
    """One row's trials as ``load_trials`` gives them (``metric=None``: the record names none)."""
    scores = np.asarray(scores, dtype=float)
    return pd.DataFrame(
        {
            "dataset": dataset,
            "metric": metric,
            "space": "darts-cell" if dataset.startswith("cifar") else "sequential",
            "op_set": "darts" if dataset.startswith("cifar") else "all",
            "method": method,
            "hp_set": "H1",
            "epochs": 10,
            "variant": "-",
            "seed": np.arange(scores.size),
            "status": status,
            "arch_score": scores,
            "oneshot_score": scores + 1.0,
            **extra,
        }
    )


def test_metric_labels_units_and_directions():
    assert metric_label("psnr") == "PSNR (dB)" and metric_label("accuracy") == "accuracy (%)"
    assert metric_label("params_m") == "parameters (M)" and metric_label("ssim") == "SSIM"
    assert metric_label(None) == metric_label("-") == metric_label(math.nan) == "score"
    assert metric_label("loss") == "loss"  # unregistered: named as recorded
    assert find_metric("params_m").best_word == "lowest" and find_metric("psnr").direction_text == "higher is better"
    assert find_metric("psnr").amount(1.0) == "1 dB" and find_metric("accuracy").amount(2.0) == "2 percentage points"
    assert METRICS.get("pgd_accuracy").label() == "PGD accuracy [%]"


def test_metric_is_a_grouping_column():
    assert hs.GROUP_COLUMNS[:2] == ("dataset", "metric")


def test_a_mixed_study_gives_separate_groups_per_metric():
    rng = np.random.default_rng(0)
    blur, cifar = rng.normal(20, 1, 8), rng.normal(93, 1, 7)
    df = pd.concat(
        [
            trials("blur", "psnr", "das", blur),
            trials("cifar10", "accuracy", "das", cifar),
            # A trial that failed before its task was built carries the runner's default metric;
            # it counts in its data set's row, not as a PSNR row of cifar10.
            trials("cifar10", "psnr", "das", [np.nan], status="failed", seed=[7]),
        ],
        ignore_index=True,
    )
    out = hs.summary_table(df, n_boot=50).set_index(["dataset", "metric"])
    assert sorted(out.index) == [("blur", "psnr"), ("cifar10", "accuracy")]
    assert out.loc[("cifar10", "accuracy"), ["n", "n_failed", "n_ok"]].tolist() == [8, 1, 7]
    assert out.loc[("cifar10", "accuracy"), "median"] == pytest.approx(np.median(cifar))
    assert out.loc[("blur", "psnr"), "median"] == pytest.approx(np.median(blur))
    # Even within one data set, two metrics are two groups and are never pooled.
    odd = pd.concat([trials("x", "psnr", "das", [1.0, 2, 3]), trials("x", "ssim", "das", [0.5, 0.6])])
    described = hs.describe_scores(odd, n_boot=0, oneshot=None)
    assert described[["metric", "n", "median"]].values.tolist() == [["psnr", 3, 2.0], ["ssim", 2, 0.55]]
    compared = hs.compare_groups(pd.concat([odd, trials("x", "psnr", "random", [1.0, 2])]), n_boot=0)
    assert compared["note"].str.contains("mixes metric psnr, ssim").all()
    assert compared["mannwhitney_p"].isna().all()


def test_frames_without_a_metric_column_are_one_unnamed_metric():
    df = trials("blur", None, "das", [1.0, 2, 3]).drop(columns="metric")
    out = hs.describe_scores(df, n_boot=0, oneshot=None)
    assert out["metric"].tolist() == ["-"] and hs.group_metric(df).name == "score"


def test_ranking_and_best_follow_a_min_metric():
    low, high = [1.0, 1.2, 1.1, 0.9, 1.0, 1.3], [3.0, 2.8, 3.1, 2.9, 3.2, 3.0]
    df = pd.concat(
        [
            trials("cifar10", "params_m", "darts", low),
            trials("cifar10", "params_m", "das", high),
            trials("cifar10", "params_m", "pc-darts", [2.0] * 6),
        ],
        ignore_index=True,
    )
    ranking = method_ranking(df, n_boot=50).set_index("method")
    assert ranking["rank"].to_dict() == {"darts": 1, "pc-darts": 2, "das": 3}
    assert ranking.loc["darts", "best"] == min(low) and ranking.loc["das", "best"] == min(high)
    psnr = method_ranking(df.assign(metric="psnr"), n_boot=0).set_index("method")
    assert psnr["rank"].to_dict() == {"das": 1, "pc-darts": 2, "darts": 3} and psnr.loc["das", "best"] == max(high)


def test_beating_follows_a_min_metric():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    assert compare_two(a, b, n_boot=0)["prob_a_beats_b"] == 0.0
    assert compare_two(a, b, n_boot=0, direction="min")["prob_a_beats_b"] == 1.0
    assert (steps_to_beat([3.0, 4.0], 2.0, n_runs=3) == 1).all()
    assert np.isnan(steps_to_beat([3.0, 4.0], 2.0, n_runs=3, direction="min")).all()
    assert (steps_to_beat([1.0], 2.0, n_runs=3, direction="min") == 1).all()
    df = pd.concat(
        [
            trials("cifar10", "params_m", "das", [2.0] * 6),
            trials("cifar10", "params_m", "random", [1.0, 3.0, 3.0, 3.0]),
            trials("cifar10", "params_m", "random", [np.nan], status="failed", seed=[9]),
        ],
        ignore_index=True,
    )
    steps = hs.random_search_steps(df, n_runs=5).iloc[0]
    assert (steps["target"], steps["n_better"], steps["p_better"]) == (2.0, 1, 0.2)  # failed draw: no gain
