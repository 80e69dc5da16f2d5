"""The Task layer: metric definitions, the 1D task, and bitwise agreement with stored trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.problems import make_problem
from harness.runner.spec import RowSpec
from harness.runner.trial import run_batch
from harness.tasks.inverse1d import InverseTask
from harness.tasks.metrics import METRICS, Metric
from harness.tasks.registry import make_task

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
    monkeypatch.setattr(task, "sample", lambda generator, split="train": batch)
    assert task.evaluate(model, torch.Generator()) == {"psnr": pytest.approx(20.0, abs=1e-4)}


def test_a_stored_loop_trial_recomputes_bit_for_bit_through_the_task_layer():
    """results/blur-loop-5trials was stored before the Task layer; the loop engine now calls the
    task, and must give the same numbers (same draws, same order; bit for bit on the CPU that
    stored it, else within the rounding between CPUs: ``recompute_check``)."""
    from recompute_check import assert_recomputes

    records = [json.loads(line) for line in open(REPO / "results" / "blur-loop-5trials" / "trials.jsonl")]
    stored = next(r for r in records if r["method"] == "random" and r["op_set"] == "good" and r["seed"] == 1)
    spec = RowSpec.from_record(stored).trial(1)
    assert spec.trial_id == stored["trial_id"]
    assert_recomputes(run_batch([spec], batched=False)[0], stored)


SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def _tiny_model(task):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, task.num_classes))


def test_cifar_task_follows_the_darts_split_on_files_in_the_real_format(tmp_path, monkeypatch):
    from harness.tasks.data.synthetic import write_cifar10

    write_cifar10(tmp_path, n_per_batch=20, n_test=10)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    task = make_task("cifar10", {"batch_size": 8})
    sizes = {split: task.split_size(split) for split in ("train", "val", "retrain", "test")}
    assert sizes == {"train": 50, "val": 50, "retrain": 100, "test": 10}  # halves of 100 training rows
    assert task.batches_per_epoch == 6 and task.input_shape == (3, 32, 32) and task.num_classes == 10
    batch = task.sample(torch.Generator().manual_seed(0), "val")
    assert batch.inputs.shape == (8, 3, 32, 32) and batch.targets.dtype == torch.int64
    again = task.sample(torch.Generator().manual_seed(0), "val")
    assert torch.equal(batch.inputs, again.inputs)  # same generator state, same batch
    model = _tiny_model(task)
    loss = task.loss(task.forward(model, batch), batch)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(model(batch.inputs), batch.targets))
    logits = model(task.splits["test"][0])
    expected = 100.0 * float((logits.argmax(1) == task.splits["test"][1]).float().mean())
    assert task.evaluate(model, split="test")["accuracy"] == pytest.approx(expected)


def test_mnist_proxy_cuts_disjoint_parts_of_the_genuine_test_set(monkeypatch):
    if not SHARED_MNIST.exists():
        pytest.skip("no ../shared/data/mnist beside the repository")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(SHARED_MNIST))
    task = make_task("mnist-proxy", {"n_train": 64, "n_val": 64, "n_retrain": 128, "n_test": 100})
    parts = [task.splits[s][0].flatten(1) for s in ("train", "val", "retrain", "test")]
    rows = torch.cat(parts)
    assert rows.shape == (356, 3 * 32 * 32)
    assert len(torch.unique(rows, dim=0)) == 356  # no image in two parts
    border = task.splits["train"][0][:, :, :2]  # 28 -> 32 px pads 2 rows of black, then normalization
    torch.testing.assert_close(border, torch.full_like(border, -0.1307 / 0.3081))


def test_image_task_reads_no_data_until_used(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    task = make_task("cifar10")  # a dry run builds tasks without data
    assert task.input_shape == (3, 32, 32) and task.num_classes == 10
    with pytest.raises(FileNotFoundError, match="cifar"):
        task.split_size("train")


def test_trial_records_carry_metric_dicts_with_the_primary_score():
    spec = RowSpec.make(dataset="blur", space="sequential", op_set="good", method="das", hp_set="H1", epochs=1,
                        options={"problem": {"samples_per_evaluation": 128}, "ops": {"channels": 2},
                                 "space": {"n_layers": 2}}).trial(0)
    record = run_batch([spec], batched=False)[0].to_record()
    assert record["metric"] == "psnr"
    assert record["arch_metrics"] == {"psnr": record["arch_score"]}
    assert record["oneshot_metrics"] == {"psnr": record["oneshot_score"]}
