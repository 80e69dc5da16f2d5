"""The committed reference runs must resume with nothing to run: their trial ids are what the
study files (parsed and typed today) produce. A change of the id scheme fails here first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.runner.store import TrialStore
from harness.study.config import load_study

REPO = Path(__file__).resolve().parents[1]

# folder under results/ -> (study file, CLI overrides), as listed in results/README.md
REFERENCE_RUNS = {
    # issue 13: the one engine, harmful ops calibrated on the Random rows
    "blur": ("studies/blur.yaml", {}),
    "downsampling": ("studies/downsampling.yaml", {}),
    # made before the harmful ops' calibration: their own study files (issue 13)
    "blur-75trials": ("results/blur-75trials/study.yaml", {}),
    "downsampling-75trials": ("results/downsampling-75trials/study.yaml", {}),
    "blur-10trials": ("results/blur-10trials/study.yaml", {"trials": 10}),
    "blur-loop-5trials": ("results/blur-loop-5trials/study.yaml", {"trials": 5}),
    "methods_blur_quick": ("studies/methods_blur_quick.yaml", {}),
    "tuned_vs_paper_blur": ("results/tuned_vs_paper_blur/study.yaml", {}),
    "cifar_proxy": ("studies/cifar_proxy.yaml", {}),
    "hyperparameters_blur": ("studies/hyperparameters_blur.yaml", {}),
    "hyperparameters_downsampling": ("studies/hyperparameters_downsampling.yaml", {}),
    "das_single": ("studies/das_single.yaml", {}),
    "nonsequential": ("studies/nonsequential.yaml", {}),
    "nonsequential_hyperparameters": ("studies/nonsequential_hyperparameters.yaml", {}),
    "methods_blur": ("studies/methods_blur.yaml", {}),
}
# Reference runs committed part-way (resumed across sessions): every stored trial is one the study
# file still produces, so the same command continues them.
IN_PROGRESS: dict[str, str] = {}


@pytest.mark.parametrize("folder", sorted(REFERENCE_RUNS))
def test_reference_run_resumes_with_nothing_to_run(folder, monkeypatch):
    study_file, overrides = REFERENCE_RUNS[folder]
    monkeypatch.chdir(REPO)  # tuned:results/tune_blur is relative to the repository
    study = load_study(study_file, overrides)
    store = TrialStore(REPO / "results" / folder)
    stored = store.finished_ids()
    todo = [s for s in study.specs() if s.trial_id not in stored]
    assert not store.damaged
    assert len(stored) >= len(study.specs())  # tuned_vs_paper_blur also holds copied H1 trials
    assert todo == []


# Stores written by a benchmark script, not a study file (results/README.md names the command).
EVIDENCE = {"calibration_harmful_ops": "benchmarks/calibrate_harmful_ops.py"}


def test_every_committed_store_is_listed():
    committed = {p.parent.name for p in (REPO / "results").glob("*/trials.jsonl")}
    unlisted = committed - set(REFERENCE_RUNS) - set(IN_PROGRESS) - set(EVIDENCE)
    assert unlisted <= {"tune_blur"}, os.listdir(REPO / "results")
    readme = (REPO / "results" / "README.md").read_text()
    assert all(f"`{folder}/`" in readme and script in readme for folder, script in EVIDENCE.items())


@pytest.mark.parametrize("folder", sorted(IN_PROGRESS))
def test_run_in_progress_resumes(folder):
    store = TrialStore(REPO / "results" / folder)
    if not store.path.exists():
        pytest.skip(f"results/{folder} not started")
    specs = {s.trial_id for s in load_study(REPO / IN_PROGRESS[folder]).specs()}
    stored = store.finished_ids()
    assert not store.damaged and stored and stored <= specs


@pytest.mark.parametrize("method", ["das", "e2rnas"])
def test_a_stored_method_trial_recomputes_bit_for_bit(method):
    """results/methods_blur_quick (loop engine) still recomputes: refactors of the search loop and
    the presets (e2rnas: the cost objectives and the MGDA combiner) change no number (bit for bit on
    the CPU that stored it, else within the rounding between CPUs: ``recompute_check``)."""
    import json

    from recompute_check import assert_recomputes

    from harness.runner.spec import RowSpec
    from harness.runner.trial import run_trial

    records = [json.loads(line) for line in open(REPO / "results" / "methods_blur_quick" / "trials.jsonl")]
    stored = next(r for r in records if r["method"] == method and r["seed"] == 0 and r["hp_set"] == "H1")
    spec = RowSpec.from_record(stored).trial(0)
    assert spec.trial_id == stored["trial_id"]
    assert_recomputes(run_trial(spec, "cpu"), stored)


def test_reproduce_lists_every_reference_study_and_writes_an_index(tmp_path, capsys):
    from harness.study.reproduce import REFERENCES, main

    assert all((REPO / r.study).is_file() for r in REFERENCES)
    assert main(["--out", str(REPO / "results"), "--list"]) == 0
    listed = capsys.readouterr().out
    assert "cifar_proxy" in listed and "80 /    80 trials (0 failed)" in listed
    assert main(["--out", str(tmp_path), "--index-only"]) == 0
    index = (tmp_path / "index.md").read_text()
    assert index.count("| `studies/") == len(REFERENCES) and "| 0 / 600 | 0 | - | - |" in index
    assert main(["--out", str(tmp_path), "--only", "nope"]) == 2
