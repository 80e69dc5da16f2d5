"""--reuse: a trial another study folder already holds (same trial id) is copied, not recomputed."""

from __future__ import annotations

import json

import pytest

import harness
from harness.runner.store import TrialStore
from harness.study.config import StudyConfigError

OPTIONS = {"problem": {"samples_per_evaluation": 128, "batch_size": 64}, "ops": {"channels": 2},
           "space": {"n_layers": 2}}


def study(name: str, methods: list[str]) -> dict:
    return {"name": name, "trials": 2, "epochs": 2, "workers": 1, "options": OPTIONS,
            "defaults": {"dataset": "blur", "space": "sequential", "hp_set": "H1"},
            "rows": [{"op_set": "good", "method": methods}]}


def test_a_second_study_copies_the_shared_trials_and_runs_only_its_own(tmp_path):
    first = harness.run_study(study("first", ["das", "random"]), out=tmp_path, report=False, progress=False,
                              verbose=False)
    second = harness.run_study(study("second", ["das", "random", "random-search"]), out=tmp_path, report=False,
                               progress=False, verbose=False, reuse=[tmp_path / "first"])
    assert len(second) == 6 and (second["status"] == "ok").all()
    records = {r["trial_id"]: r for r in TrialStore(tmp_path / "second").records()}
    originals = {r["trial_id"]: r for r in TrialStore(tmp_path / "first").records()}
    assert set(originals) < set(records)
    for tid, original in originals.items():  # the copies are the stored trials, marked as copies
        copy = records[tid]
        assert copy["extra"].pop("reused_from") == str(tmp_path / "first")
        assert copy == original
    own = [r for tid, r in records.items() if tid not in originals]
    assert {r["method"] for r in own} == {"random-search"} and len(own) == 2
    assert all("reused_from" not in r["extra"] for r in own)
    assert list(second["trial_id"][second["method"] != "random-search"]) == list(first["trial_id"])


def test_failed_and_unwanted_trials_are_not_copied_and_a_missing_folder_is_an_error(tmp_path):
    source = TrialStore(tmp_path / "source")
    source.append_record({"trial_id": "failed-here", "status": "failed", "failure_reason": "diverged", "extra": {}})
    source.append_record({"trial_id": "not-wanted", "status": "ok", "failure_reason": "", "extra": {}})
    source.append_record({"trial_id": "wanted", "status": "ok", "failure_reason": "", "extra": {"k": 1}})
    target = TrialStore(tmp_path / "target")
    assert target.adopt(tmp_path / "source", {"failed-here", "wanted"}) == 1
    assert target.adopt(tmp_path / "source", {"failed-here", "wanted"}) == 0  # already finished here
    lines = [json.loads(line) for line in target.path.read_text().splitlines()]
    assert [r["trial_id"] for r in lines] == ["wanted"] and lines[0]["extra"]["k"] == 1
    with pytest.raises(StudyConfigError, match="no trial store"):
        harness.run_study(study("third", ["random"]), out=tmp_path, report=False, progress=False, verbose=False,
                          reuse=[tmp_path / "absent"])
