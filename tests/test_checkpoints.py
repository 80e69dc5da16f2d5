"""Checkpoints inside a trial (issue 12, section 4): a study killed with SIGKILL in the middle of a
trial's search or retraining resumes that trial from its last completed epoch and stores the record
an uninterrupted run stores; checkpoints are gone once the trials are stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.methods.checkpoint import TrialCheckpoint
from harness.tasks.data.synthetic import write_mnist

ROOT = Path(__file__).resolve().parents[1]
STUDY = """\
name: ckpt
trials: {trials}
epochs: 4
workers: 1
defaults: {{dataset: mnist-proxy, space: darts-cell, op_set: darts, hp_set: DARTS-CIFAR}}
options:
  problem: {{n_train: 64, n_val: 64, n_retrain: 128, n_test: 40, batch_size: 16, image_size: 12, channels: 1,
            retrain_epochs: 4, retrain_batch_size: 16, cutout: 4, crop_padding: 1}}
  space: {{n_cells: 3, channels: 2, eval_cells: 3, eval_channels: 4, auxiliary: true}}
rows:
  - {{method: {method}}}
"""
COMPARED = ("oneshot_score", "arch_score", "genotype", "final_alphas", "alpha_history", "arch_metrics",
            "oneshot_metrics", "n_param_free_ops")


def _command(study: Path, out: Path, data: Path, engine: str) -> list[str]:
    return [sys.executable, "-m", "harness.study", str(study), "--out", str(out), "--data-dir", str(data),
            "--batch-size", "1" if engine == "alone" else "32", "--no-report", "--quiet"]


def _records(out: Path) -> dict:
    lines = (out / "ckpt" / "trials.jsonl").read_text().splitlines()
    return {r["seed"]: r for r in map(json.loads, lines)}


def _kill_when(command: list[str], checkpoint_dir: Path, phase: str, min_epoch: int) -> None:
    """Start the study; SIGKILL its process group once a checkpoint holds ``phase`` at ``min_epoch``."""
    proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the study ended before it could be killed: {proc.stderr.read()}"
            for path in checkpoint_dir.glob("*.pt") if checkpoint_dir.is_dir() else []:
                saved = TrialCheckpoint(path).resume(phase)
                if saved is not None and saved["epoch"] >= min_epoch:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return
            time.sleep(0.05)
        raise AssertionError(f"no checkpoint of {phase} at epoch {min_epoch} within the deadline")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize(("engine", "method", "trials", "phase", "epoch"), [
    ("alone", "darts", 1, "search-0", 1),    # killed in the search
    ("alone", "darts", 1, "train-0", 0),     # killed in the retraining
    ("batched", "darts", 2, "search-0", 1),  # a batch of two seeds, killed in the search
    ("batched", "random", 2, "train-0", 1),  # ... killed in the retraining
])
def test_killed_trial_resumes_to_the_uninterrupted_record(tmp_path, engine, method, trials, phase, epoch):
    data = tmp_path / "data"
    write_mnist(data, n_train=8, n_test=300)
    study = tmp_path / "study.yaml"
    study.write_text(STUDY.format(trials=trials, method=method))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_command(study, straight, data, engine), cwd=ROOT, check=True, capture_output=True)

    _kill_when(_command(study, killed, data, engine), killed / "ckpt" / "checkpoints", phase, epoch)
    assert not (killed / "ckpt" / "trials.jsonl").exists() or not _records(killed)
    assert list((killed / "ckpt" / "checkpoints").glob("*.pt"))  # the work done so far is on disk
    subprocess.run(_command(study, killed, data, engine), cwd=ROOT, check=True, capture_output=True)

    expected, resumed = _records(straight), _records(killed)
    assert set(resumed) == set(expected) and len(resumed) == trials
    for seed, record in resumed.items():
        assert record["status"] == "ok", record["failure_reason"]
        for key in COMPARED:
            assert record[key] == expected[seed][key], key
        # It resumed (a rerun from scratch would give the same record, so check that it did not).
        assert record["extra"]["resumed_after_epoch"][phase] >= epoch
        assert "resumed_after_epoch" not in expected[seed]["extra"]
    assert not (killed / "ckpt" / "checkpoints").exists()  # deleted once the trials are stored


def test_checkpoint_file_is_replaced_atomically_and_reloads(tmp_path):
    checkpoint = TrialCheckpoint(tmp_path / "t.pt")
    phase = checkpoint.phase("train")
    assert phase == "train-0" and checkpoint.phase("train") == "train-1" and checkpoint.resume(phase) is None
    checkpoint.save(phase, {"epoch": 3, "w": torch.arange(4.0)})
    again = TrialCheckpoint(tmp_path / "t.pt")
    assert again.resume("train-0")["epoch"] == 3
    assert torch.equal(again.resume("train-0")["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["t.pt"]  # no temporary file left behind
    (tmp_path / "t.pt").write_bytes(b"torn")
    assert TrialCheckpoint(tmp_path / "t.pt").resume("train-0") is None  # unreadable: start the phase again
