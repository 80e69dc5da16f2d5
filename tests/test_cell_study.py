"""The DARTS cell space end to end through the study CLI (issue 12): a tiny proxy on MNIST-format
files the test writes, the loop engine, accuracy as the metric, genotypes in DARTS's format."""

from __future__ import annotations

import json

from harness.spaces.darts_cell import genotype_from_json
from harness.study.__main__ import main
from harness.tasks.data.synthetic import write_mnist

STUDY = """\
name: cell-smoke
trials: 1
epochs: 2
workers: 1
defaults: {dataset: mnist-proxy, space: darts-cell, op_set: darts, hp_set: H1}
options:
  problem: {n_train: 32, n_val: 32, n_retrain: 64, n_test: 64, batch_size: 16}
  space: {n_cells: 3, channels: 2, eval_cells: 3, eval_channels: 4, auxiliary: false}
rows:
  - {method: [das, random-search], hp_overrides: {alpha_warmup: false}}
"""


def test_cell_search_runs_end_to_end_and_records_accuracy(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=8, n_test=200)
    study = tmp_path / "cell.yaml"
    study.write_text(STUDY)
    argv = [str(study), "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"), "--batch-size", "1",
            "--no-report", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    records = {r["method"]: r for r in map(json.loads, open(tmp_path / "out" / "cell-smoke" / "trials.jsonl"))}
    assert set(records) == {"das", "random-search"}
    for record in records.values():
        assert record["status"] == "ok", record["failure_reason"]
        assert record["metric"] == "accuracy" and 0 <= record["arch_score"] <= 100
        assert set(record["arch_metrics"]) == {"accuracy", "val_accuracy", "params_m", "flops_m"}
        assert 0 < record["arch_metrics"]["params_m"] < 1 and record["arch_metrics"]["flops_m"] > 0
        genotype = genotype_from_json(record["genotype"])
        assert len(genotype.normal) == 8 and len(genotype.reduce) == 8  # two inputs for each of 4 nodes
    das = records["das"]
    assert das["oneshot_metrics"]["accuracy"] == das["oneshot_score"]
    assert 0 <= das["oneshot_metrics"]["inherited_accuracy"] <= 100  # derived genotype, supernet weights
    assert len(das["final_alphas"]) == 28 and len(das["final_alphas"][0]) == 8  # 2 cells x 14 edges x 8 ops
    assert main(argv) == 0 and "2 already stored, 0 to run" in capsys.readouterr().err
