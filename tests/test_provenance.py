"""Provenance on every trial record (issue 14, item 7): where and how a trial ran is measured when it
runs, stored with its record, and the report counts trials per provenance (old records without it
form one "not recorded" group)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import numpy
import pandas as pd
import torch

import harness
from harness.report import write_report
from harness.report.provenance import NOT_RECORDED, provenance_groups, provenance_note
from harness.runner.provenance import (
    PACKAGE_ROOT,
    cpu_model,
    device_text,
    git_commit,
    git_dirty,
    process_facts,
    trial_engine,
)
from harness.runner.spec import TrialSpec
from harness.runner.store import TrialStore
from harness.runner.trial import run_batch, run_trial
from harness.stats.synthetic import synthetic_records

FAST = {"problem": {"samples_per_evaluation": 128}, "ops": {"channels": 4}}


def spec(seed: int) -> TrialSpec:
    return TrialSpec.make(dataset="blur", space="sequential", op_set="good", method="random", hp_set="H1",
                          seed=seed, epochs=1, options=FAST)


def test_a_trial_alone_and_a_batch_record_where_and_how_they_ran():
    alone = run_trial(spec(0), "cpu")
    pair = run_batch([spec(0), spec(1)], "cpu", batched=True)
    assert alone.status == "ok" and all(r.status == "ok" for r in pair)
    prov = alone.provenance
    assert prov["host"] == socket.gethostname() and prov["threads"] == torch.get_num_threads() == 1
    assert (prov["torch"], prov["numpy"], prov["harness"]) == (torch.__version__, numpy.__version__,
                                                               harness.__version__)
    assert (prov["device"], prov["device_name"]) == ("cpu", None)
    assert (prov["cpu"], prov["cpu_capability"]) == (cpu_model(), torch.backends.cpu.get_cpu_capability())
    assert prov["commit"] == git_commit() and prov["dirty"] == (git_dirty() if prov["commit"] else None)
    assert (prov["engine"], prov["batch_trials"]) == ("alone", 1)
    for r in pair:
        assert (r.provenance["engine"], r.provenance["batch_trials"]) == ("trial-axis", 2)
        assert {k: v for k, v in r.provenance.items() if k not in ("engine", "batch_trials")} == {
            k: v for k, v in prov.items() if k not in ("engine", "batch_trials")}
    assert "engine" not in alone.extra and "engine" not in pair[0].extra  # the old field is gone


def test_a_lone_trial_of_a_batched_row_names_the_computation_it_ran_in():
    """It runs beside a shadow copy of itself: the trial axis with K = 2."""
    (lone,) = run_batch([spec(3)], "cpu", batched=True)
    assert lone.extra["shadow_copy"] and lone.extra["batch_size"] == 1
    assert (lone.provenance["engine"], lone.provenance["batch_trials"]) == ("trial-axis", 2)


def test_a_trial_that_cannot_be_built_still_records_its_provenance():
    bad = TrialSpec.make(dataset="blur", space="sequential", op_set="good", method="no-such-method", hp_set="H1",
                         seed=0, epochs=1, options=FAST)
    result = run_trial(bad, "cpu")
    assert result.status == "failed" and result.provenance["engine"] == "alone"
    assert result.provenance["host"] == socket.gethostname()


def test_provenance_is_measured_when_the_trial_runs_and_round_trips_through_the_store(tmp_path):
    result = run_trial(spec(1), "cpu")
    torch.set_num_threads(2)  # the storing process may differ from the worker: the record keeps the worker's
    try:
        record = result.to_record()
    finally:
        torch.set_num_threads(1)
    assert record["provenance"]["threads"] == 1 and record["finished_at"]
    store = TrialStore(tmp_path)
    store.append(result)
    (stored,) = store.records()
    assert stored["provenance"] == result.provenance and trial_engine(stored) == "alone"
    df = store.dataframe()
    assert df["provenance"].iloc[0] == result.provenance


def test_trial_engine_reads_new_and_old_records():
    assert trial_engine({"provenance": {"engine": "trial-axis"}, "extra": {"engine": "loop"}}) == "trial-axis"
    assert trial_engine({"extra": {"engine": "loop"}}) == "alone"
    assert trial_engine({"extra": {"engine": "batched"}}) == "trial-axis"
    assert trial_engine({"extra": {}}) is None and trial_engine({}) is None


def _prov(**changes) -> dict:
    base = {"host": "a", "cpu": "Xeon", "cpu_capability": "AVX512", "harness": "0.1.0", "torch": "2.13.0",
            "numpy": "2.4.6", "python": "3.11.7",
            "commit": "0123456789abcdef", "dirty": False, "device": "cpu", "device_name": None, "threads": 1,
            "engine": "trial-axis", "batch_trials": 4}
    return {**base, **changes}


def _mixed_records() -> list[dict]:
    """Three trials on host a (CPU), two on host b (a GPU, modified checkout), two legacy records."""
    records = synthetic_records(datasets=("blur",), op_sets=("all",), methods=("das",), hp_sets=("H1",),
                                n_seeds=7, seed=2)
    for i, r in enumerate(records):
        r["finished_at"] = f"2026-01-0{i + 1}T00:00:00"
    for r in records[:3]:
        r["provenance"] = _prov(batch_trials=3 if r is records[0] else 4)  # K is not part of the group
    for r in records[3:5]:
        r["provenance"] = _prov(host="b", device="cuda:0", device_name="NVIDIA H200", dirty=True, cpu=None,
                                cpu_capability=None)  # stored before the CPU was recorded
    records[5]["extra"]["engine"] = "loop"  # stored before provenance; records[6] has no engine either
    return records


def test_report_counts_trials_per_provenance_with_legacy_records_as_one_group(tmp_path):
    store = TrialStore(tmp_path)
    for r in _mixed_records():
        store.append_record(r)
    groups = provenance_groups(store.dataframe())
    assert groups["trials"].tolist() == [3, 2, 2]
    assert groups["host"].tolist() == ["a", "b", NOT_RECORDED]
    assert groups["cpu"].tolist() == ["Xeon (AVX512)", "unknown", NOT_RECORDED]
    assert groups["device"].tolist() == ["cpu", "cuda:0 (NVIDIA H200)", NOT_RECORDED]
    assert groups["commit"].tolist() == ["0123456789", "0123456789 (modified)", NOT_RECORDED]
    assert groups["engine"].tolist() == ["trial-axis", "trial-axis", "alone"]  # legacy: extra.engine "loop"
    assert groups["first finished"].tolist() == ["2026-01-01T00:00:00", "2026-01-04T00:00:00",
                                                 "2026-01-06T00:00:00"]
    assert groups["last finished"].iloc[1] == "2026-01-05T00:00:00"
    assert "come from 3 environments" in provenance_note(groups)


def test_one_environment_has_no_note_and_a_store_without_provenance_is_one_group():
    legacy = pd.DataFrame({"extra": [{"engine": "batched"}, {}], "finished_at": ["x", "y"]})
    groups = provenance_groups(legacy)
    assert groups["trials"].tolist() == [2] and groups["engine"].tolist() == ["trial-axis"]
    assert provenance_note(groups) == ""
    same = provenance_groups(pd.DataFrame({"provenance": [_prov(), _prov(batch_trials=2)]}))
    assert same["trials"].tolist() == [2] and provenance_note(same) == ""
    other_cpu = provenance_groups(pd.DataFrame({"provenance": [_prov(), _prov(cpu_capability="AVX2")]}))
    assert other_cpu["trials"].tolist() == [1, 1] and "CPU models" in provenance_note(other_cpu)


def test_the_report_has_the_provenance_table_and_says_when_environments_differ(tmp_path):
    store = TrialStore(tmp_path / "study")
    for r in _mixed_records():
        store.append_record(r)
    write_report(store.folder, n_boot=20, alpha_trials=0)
    md = (store.folder / "summary.md").read_text()
    assert md.count("This study's trials come from 3 environments") == 2  # the head and the section
    section = md.split("## Provenance")[1].split("\n## ")[0]
    assert "| b | unknown | cuda:0 (NVIDIA H200) |" in section and f"| {NOT_RECORDED} |" in section
    assert "Provenance" in (store.folder / "report.html").read_text()


def test_git_helpers_give_none_outside_a_checkout_and_never_raise(tmp_path, monkeypatch):
    assert git_commit(tmp_path) is None and git_dirty(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_commit(PACKAGE_ROOT) is None and git_dirty(PACKAGE_ROOT) is None


def test_git_helpers_read_a_checkout_but_not_one_above_the_folder(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head and git_dirty(tmp_path) is False
    (tmp_path / "harness" / "a.py").write_text("x = 2\n")
    assert git_dirty(tmp_path) is True
    (tmp_path / "results").mkdir()
    assert git_commit(tmp_path / "results") is None  # a folder inside a checkout is not its root


def test_a_gpu_is_named_with_its_index_and_model(monkeypatch):
    """No GPU here: torch.cuda's two queries are stubbed (the GPU machine runs the real thing)."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU model {index}")
    assert device_text("cuda") == ("cuda:1", "GPU model 1")
    assert device_text(torch.device("cuda", 0)) == ("cuda:0", "GPU model 0")
    assert device_text("cpu") == ("cpu", None)


def test_process_facts_are_a_copy():
    facts = process_facts()
    facts["host"] = "changed"
    assert process_facts()["host"] == socket.gethostname()
    assert Path(PACKAGE_ROOT, "harness", "__init__.py").exists()
