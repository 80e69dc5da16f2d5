"""[001] Tables 1-4 beside ours (harness.report.paper_comparison) and the index section built from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.report import paper_tables, write_report
from harness.report.paper_comparison import comparison_markdown, counterparts, paper_comparison
from harness.runner.store import TrialStore
from harness.stats.synthetic import synthetic_records
from harness.study.reproduce import write_index


@pytest.fixture(scope="module")
def table1(tmp_path_factory):
    """A Table-1-shaped study at the paper's 50 epochs, its records and its report's summary.csv."""
    folder = tmp_path_factory.mktemp("results") / "blur"
    records = synthetic_records(datasets=("blur",), n_seeds=8, epochs=50, fail_rate=0.15, seed=5)
    store = TrialStore(folder)
    for record in records:
        store.append_record(record)
    write_report(folder, n_boot=50, alpha_trials=0)
    return folder, records, pd.read_csv(folder / "summary.csv", dtype={"hp_set": str, "variant": str})


def test_every_published_row_stands_beside_our_row_of_the_same_identity(table1):
    _, records, summary = table1
    out = paper_comparison({1: summary})
    published = paper_tables()
    assert len(out) == int((published["table"] == 1).sum())  # both data sets' rows, downsampling unmatched
    blur = out[out["dataset"] == "blur"]
    assert blur["n"].notna().all() and out[out["dataset"] == "downsampling"]["n"].isna().all()
    for _, row in blur.iterrows():
        mine = [r for r in records if (r["op_set"], r["method"]) == (row["op_set"], row["method"])]
        ok = [r["arch_score"] for r in mine if r["status"] == "ok"]
        assert row["n"] == len(mine) and row["n_failed"] == len(mine) - len(ok)
        assert row["median"] == pytest.approx(np.median(ok)) and row["max"] == pytest.approx(max(ok))
        paper = published[(published["table"] == 1) & (published["dataset"] == "blur")
                          & (published["op_set"] == row["op_set"]) & (published["method"] == row["method"])]
        assert row["paper_median"] == paper["median"].item()
        if math.isfinite(row["median_ci_low"]):
            assert row["in_ci"] == (row["median_ci_low"] <= row["paper_median"] <= row["median_ci_high"])
    # Baselines: the paper's rows have no hp set, ours were stored under H1; DAS matches H1 only.
    assert set(blur["hp_set"]) == {"-", "H1"}


def test_only_plain_50_epoch_psnr_rows_are_counterparts():
    summary = pd.DataFrame({
        "epochs": [50, 50, 50, 4, 50],
        "metric": ["psnr", "psnr", "psnr", "psnr", "accuracy"],
        "variant": ["-", "ops.noise_op_std=4.0", "param_lr=0.1", "-", "-"],
    })
    assert list(counterparts(summary).index) == [0, 1]  # an op reading is allowed, an override is not


def test_the_markdown_counts_the_published_medians_inside_our_cis(table1):
    _, _, summary = table1
    out = paper_comparison({1: summary})
    text = comparison_markdown(out)
    known = out[out["in_ci"].notna()]
    assert f"in {int(known['in_ci'].sum())} of {len(known)} rows" in text
    assert f"{len(out) - len(known)} published row(s) have no finished counterpart" in text
    assert text.count("\n| 1 | ") == len(out)


def test_the_index_puts_the_reference_runs_beside_the_paper(table1):
    folder, _, _ = table1
    index = write_index(folder.parent).read_text()
    section = index.split("## [001] Tables 1-4 beside ours")[1]
    assert "| 1 | Blur | sequential | all | DAS | H1 |" in section
    assert "- Table 1: [001]'s median lies inside our 95% CI in" in section
    assert "| 2 | " not in section  # no Table 2 run has a summary in this folder
