"""The report keeps rows that differ only in overrides apart, names them, and flags frozen alpha."""

from __future__ import annotations

import copy
import html
from pathlib import Path

import pandas as pd
import pytest

from harness.report import write_report
from harness.report.identity import ROW_IDENTITY, add_levels, factor_shared_settings, row_label, with_identity
from harness.report.tables import paper_caption, slice_title
from harness.runner.spec import variant_label
from harness.runner.store import TrialStore
from harness.stats.synthetic import synthetic_records

FROZEN_VARIANT = "alpha_lr=0.0"
FROZEN_ROW = f"Blur / sequential / all / DAS / H1 / 4 epochs / {FROZEN_VARIANT}"
MOVING_ROW = "Blur / sequential / all / DAS / H1 / 4 epochs"
N_SEEDS = 5


def _records() -> list[dict]:
    """DAS with moving alpha, the same DAS row with frozen alpha (an override), and random."""
    base = synthetic_records(
        datasets=("blur",), op_sets=("all",), methods=("das", "random"), n_seeds=N_SEEDS, fail_rate=0.0, seed=3
    )
    records = []
    for r in base:
        records.append({**r, "variant": "-"})
        if r["method"] == "das":
            frozen = copy.deepcopy(r)
            init = frozen["alpha_history"][0]
            frozen.update(
                trial_id=r["trial_id"] + "-frozen",
                variant=FROZEN_VARIANT,
                overrides={"alpha_lr": 0.0},
                alpha_history=[init] * len(r["alpha_history"]),
                final_alphas=init,
            )
            records.append(frozen)
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("identity") / "study"
    store = TrialStore(folder)
    for r in _records():
        store.append_record(r)
    return write_report(folder, n_boot=30, alpha_trials=2)


def test_rows_differing_only_in_overrides_stay_apart(report):
    summary = pd.read_csv(report["summary.csv"], keep_default_na=False)
    assert list(summary.columns[: len(ROW_IDENTITY)]) == list(ROW_IDENTITY)
    das = summary[summary["method"] == "das"].set_index("variant")
    assert sorted(das.index) == sorted(["-", FROZEN_VARIANT])
    assert (das["n"] == N_SEEDS).all() and (das["epochs"] == 4).all()
    comparisons = pd.read_csv(report["comparisons.csv"], keep_default_na=False)
    pair = {"das/H1, 4 epochs", f"das/H1, 4 epochs, {FROZEN_VARIANT}"}
    assert any({a, b} == pair for a, b in zip(comparisons["a"], comparisons["b"], strict=True))


def test_paper_tables_say_epochs_hp_set_and_overrides(report):
    md = report["summary.md"].read_text()
    assert "## Table 1 layout: methods, sequential space (4 epochs, H1)" in md
    assert f"## Table 1 layout: methods, sequential space (4 epochs, H1, overrides {FROZEN_VARIANT})" in md
    assert "Not directly comparable: our search ran 4 epochs, not 50." in md
    assert f"our rows override {FROZEN_VARIANT}, the paper used the plain hp set" in md


def test_frozen_row_is_flagged_and_moving_row_is_not(report):
    md = report["summary.md"].read_text()
    page = report["report.html"].read_text()
    sentence = f"alpha essentially did not move in row {FROZEN_ROW}: the median trial's largest change"
    assert f"**Warning: {sentence}" in md
    assert f"<p class='warning'>Warning: {html.escape(sentence)}" in page
    assert f"did not move in row {MOVING_ROW}:" not in md
    assert "in 1 row(s) alpha essentially did not move" in md
    motion = pd.read_csv(report["alpha_motion.csv"], keep_default_na=False).set_index("variant")
    assert motion.loc[FROZEN_VARIANT, "prob_motion_max"] == 0.0
    assert str(motion.loc[FROZEN_VARIANT, "frozen"]) == "True" and str(motion.loc["-", "frozen"]) == "False"
    assert report["figures/alpha_motion.png"].read_bytes()[:4] == b"\x89PNG"


def test_row_labels_show_variant_only_when_set():
    labels = {"space": "sequential", "op_set": "all", "method": "das", "hp_set": "H1", "epochs": 50}
    assert row_label({**labels, "variant": "-"}) == "sequential / all / DAS / H1 / 50 epochs"
    with_lr = row_label({**labels, "variant": "param_lr=0.1, problem.noise_std=0.2"})
    assert with_lr == "sequential / all / DAS / H1 / 50 epochs / param_lr=0.1, problem.noise_std=0.2"


def test_old_frames_without_variant_read_as_no_overrides():
    old = pd.DataFrame({c: ["x", "y"] for c in ROW_IDENTITY if c != "variant"})
    assert list(with_identity(old)["variant"]) == ["-", "-"]
    blank = old.assign(variant=[None, ""])
    assert list(with_identity(blank)["variant"]) == ["-", "-"]
    leveled, keys = add_levels(with_identity(old).assign(method="das", hp_set="H1", epochs=50))
    assert set(leveled["level"]) == {"das/H1, 50 epochs"} and len(keys) == 1


def test_paper_captions_name_open_readings_apart_from_overrides():
    calibrated = paper_caption({"epochs": 50, "variant": "-"}, 1, shared="ops.noise_op_std=4.0")
    assert "same budget and hp set" in calibrated and "leaves open: ops.noise_op_std=4.0" in calibrated
    mixed = paper_caption({"epochs": 50, "variant": "param_lr=0.1"}, 1, shared="ops.noise_op_std=4.0")
    assert "our rows override param_lr=0.1, the paper" in mixed and "leaves open: ops.noise_op_std=4.0" in mixed
    listed = paper_caption({"epochs": 50, "variant": "method.stages=[3, 4]"}, 1)
    assert "override method.stages=[3, 4], the paper" in listed


def test_paper_captions():
    same = paper_caption({"epochs": 50, "variant": "-"}, 1)
    assert same == "Ours: 50 epochs; in parentheses [001] Table 1, at 50 epochs, same budget and hp set (no overrides)."
    assert "our search ran 5 epochs, not 50" in paper_caption({"epochs": 5, "variant": "-"}, 3)
    assert slice_title({"epochs": 50, "variant": "-"}, ["H2", "H1", "H1"]) == "50 epochs, hp sets H1, H2"
    assert slice_title({"epochs": 10, "variant": "method.k=2"}, []) == "10 epochs, overrides method.k=2"


SHARED = {"problem": {"samples_per_evaluation": 256}, "space": {"channels": 4}}


def _with_study_settings(records: list[dict]) -> list[dict]:
    """Every trial gets the same options (as an image proxy sets them); the frozen row keeps its override."""
    out = []
    for r in records:
        r = {**r, "options": copy.deepcopy(SHARED)}
        r["variant"] = variant_label(r.get("overrides") or {}, r["options"])
        out.append(r)
    return out


def test_settings_every_trial_shares_are_printed_once_and_rows_stay_apart(tmp_path):
    records = _with_study_settings(_records())
    df, shared = factor_shared_settings(with_identity(pd.DataFrame(records)))
    assert shared == "problem.samples_per_evaluation=256, space.channels=4"
    assert set(df["variant"]) == {"-", FROZEN_VARIANT}  # what tells rows apart survives
    store = TrialStore(tmp_path / "study")
    for r in records:
        store.append_record(r)
    written = write_report(tmp_path / "study", n_boot=20, alpha_trials=0)
    md = written["summary.md"].read_text()
    csv_variants = set(pd.read_csv(written["summary.csv"], keep_default_na=False)["variant"])
    assert csv_variants == {shared, f"alpha_lr=0.0, {shared}"}  # data files keep the full text
    table_rows = [line for line in md.splitlines() if line.startswith("|") or line.startswith("#")]
    assert not any("samples_per_evaluation" in line for line in table_rows)  # no label or heading repeats it
    assert f"Settings of every trial in this study (left out of the rows' variants): {shared}." in md
    # the paper captions still count the shared settings as overrides of the published protocol
    assert f"our rows override {shared}, the paper used the plain hp set" in md
    assert f"our rows override {shared}, {FROZEN_VARIANT}, the paper used the plain hp set" in md


def test_no_shared_settings_leaves_variants_alone():
    df = with_identity(pd.DataFrame(_records()))
    out, shared = factor_shared_settings(df)
    assert shared == "-" and list(out["variant"]) == list(df["variant"])
