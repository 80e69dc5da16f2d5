"""The Task layer: metric definitions, the 1D task, and bitwise agreement with stored trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.problems import make_problem
from harness.runner.spec import RowSpec
from harness.runner.trial import run_batch
from harness.tasks.inverse1d import InverseTask, make_task
from harness.tasks.metrics import METRICS, Metric

REPO = Path(__file__).resolve().parents[1]


def test_metrics_know_their_direction():
    assert METRICS.get("psnr").better(20.0, 19.0) and not METRICS.get("psnr").better(19.0, 20.0)
    assert METRICS.get("params_m").better(1.0, 2.0)
    assert METRICS.get("accuracy").label() == "accuracy [%]" and METRICS.get("psnr").label() == "PSNR [dB]"
    with pytest.raises(ValueError, match="direction"):
        Metric("x", "up")
    with pytest.raises(KeyError, match="Did you mean 'psnr'"):
        METRICS.get("psnrr")


def test_inverse_task_draws_the_same_samples_as_the_problem():
    task = make_task("blur", {"batch_size": 8, "samples_per_evaluation": 16})
    problem = make_problem("blur", {"batch_size": 8, "samples_per_evaluation": 16})
    batch = task.sample(torch.Generator().manual_seed(3))
    x, y = problem.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(batch.targets, x) and torch.equal(batch.inputs, y)
    assert task.batches_per_epoch == 2 and task.primary == "psnr" and "forward-operator" in task.capabilities


def test_inverse_task_loss_and_psnr_of_a_known_error(monkeypatch):
    """A reconstruction off by 0.1 everywhere: MSE 0.01, PSNR 10 log10(1 / 0.01) = 20 dB (unit peak)."""
    task = InverseTask(make_problem("blur", {"batch_size": 4, "samples_per_evaluation": 8}))
    batch = task.sample(torch.Generator().manual_seed(0))

    class OffByATenth(torch.nn.Module):
        def forward(self, u0, ctx, weights=None):
            return batch.targets.unsqueeze(1) + 0.1

    model = OffByATenth()
    assert float(task.loss(task.forward(model, batch), batch)) == pytest.approx(0.01, rel=1e-5)
    monkeypatch.setattr(task, "sample", lambda generator: batch)
    assert task.evaluate(model, torch.Generator()) == {"psnr": pytest.approx(20.0, abs=1e-4)}


def test_a_stored_loop_trial_recomputes_bit_for_bit_through_the_task_layer():
    """results/blur-loop-5trials was stored before the Task layer; the loop engine now calls the
    task, and must give the same numbers (same draws, same order)."""
    records = [json.loads(line) for line in open(REPO / "results" / "blur-loop-5trials" / "trials.jsonl")]
    stored = next(r for r in records if r["method"] == "random" and r["op_set"] == "good" and r["seed"] == 1)
    spec = RowSpec.from_record(stored).trial(1)
    assert spec.trial_id == stored["trial_id"]
    fresh = run_batch([spec], engine="loop")[0]
    assert fresh.arch_score == stored["arch_score"] and fresh.genotype == stored["genotype"]
