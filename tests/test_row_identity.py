"""One row identity (``RowSpec``) from the study file to the summary (issue 11, item 3)."""

from __future__ import annotations

import pandas as pd

from harness.runner.spec import RowSpec, TrialSpec, variant_label
from harness.study.__main__ import main

STUDY = """\
name: variants
trials: 2
epochs: 1
workers: 1
defaults: {dataset: blur, space: sequential, op_set: good, hp_set: H1}
options: {problem: {samples_per_evaluation: 128, batch_size: 64}, ops: {channels: 2}, space: {n_layers: 2}}
rows:
  - {method: random}
  - {method: random, hp_overrides: {param_lr: 0.1}}
"""


def test_rows_differing_only_in_overrides_are_two_summary_rows(tmp_path, capsys):
    study = tmp_path / "variants.yaml"
    study.write_text(STUDY)
    assert main([str(study), "--out", str(tmp_path), "--quiet"]) == 0
    summary = pd.read_csv(tmp_path / "variants" / "summary.csv")
    assert len(summary) == 2
    shared = "ops.channels=2, problem.batch_size=64, problem.samples_per_evaluation=128, space.n_layers=2"
    assert sorted(summary["variant"]) == sorted([shared, f"param_lr=0.1, {shared}"])
    assert summary["n"].tolist() == [2, 2]
    assert "param_lr=0.1" in (tmp_path / "variants" / "summary.md").read_text()


def test_trial_is_row_plus_seed_and_record_round_trips():
    row = RowSpec.make(dataset="blur", space="sequential", op_set="all", method="das", hp_set="H1", epochs=7,
                       hp_overrides={"alpha_lr": 0.01}, options={"ops": {"channels": 4}})
    trial = row.trial(3)
    assert isinstance(trial, TrialSpec) and trial.row == row and trial.seed == 3
    record = {**trial.to_dict(), "overrides": trial.hp_overrides_dict}
    assert RowSpec.from_record(record).trial(3).trial_id == trial.trial_id
    assert row.variant == "alpha_lr=0.01, ops.channels=4"
    assert "7 epochs" in row.label and row.variant in row.label


def test_variant_label_is_exact():
    assert variant_label({}, {}) == "-"
    assert variant_label({"alpha_lr": 0.1}, {}) != variant_label({"alpha_lr": 0.10000001}, {})
    assert variant_label({"alpha_optimizer": "adam", "alpha_warmup": False}, {}) == (
        "alpha_optimizer=adam, alpha_warmup=false"
    )


def test_a_new_spec_field_at_its_default_keeps_stored_trial_ids():
    """Adding a field to TrialSpec must not orphan stored trials: at its default it is not hashed,
    away from it the id changes (the blur-75trials store pins the ids of the original fields)."""
    from dataclasses import dataclass

    from harness.runner.spec import TrialSpec

    @dataclass(frozen=True, kw_only=True)
    class Extended(TrialSpec):
        precision: str = "float32"

    base = dict(dataset="blur", space="sequential", op_set="good", method="das", hp_set="H1", epochs=50, seed=3)
    original = TrialSpec.make(**base)
    assert Extended.make(**base).trial_id == original.trial_id
    assert Extended.make(**base, precision="bfloat16").trial_id != original.trial_id
    stored = {"trial_id": "eb0ef23e5a386e17", "dataset": "blur", "space": "sequential", "op_set": "good",
              "method": "lg-only", "hp_set": "H1", "epochs": 50, "seed": 19}  # results/blur-75trials, line 1
    assert TrialSpec.make(**{k: stored[k] for k in base}).trial_id == stored["trial_id"]
    assert Extended.make(**{k: stored[k] for k in base}).trial_id == stored["trial_id"]
