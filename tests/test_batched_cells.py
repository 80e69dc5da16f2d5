"""The trial axis on the DARTS cell space: K seeds as one computation give each trial what it gives
alone (issue 12, section 4; issue 13: one engine)."""

from __future__ import annotations

import pytest
import torch

from harness.runner.spec import TrialSpec
from harness.runner.trial import batching_reason, run_batch, run_trial
from harness.tasks.data.synthetic import write_mnist

OPTIONS = {
    "problem": {"n_train": 32, "n_val": 32, "n_retrain": 48, "n_test": 40, "batch_size": 16, "image_size": 12,
                "channels": 1, "retrain_epochs": 2, "retrain_batch_size": 16, "cutout": 4, "crop_padding": 1},
    "space": {"n_cells": 3, "channels": 2, "eval_cells": 3, "eval_channels": 4, "auxiliary": True},
}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    write_mnist(tmp_path, n_train=8, n_test=200)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    return tmp_path


def _specs(name: str, seeds=(0, 1, 2), epochs: int = 2, **extra) -> list[TrialSpec]:
    options = {**OPTIONS, **extra}
    return [TrialSpec.make(dataset="mnist-proxy", space="darts-cell", op_set="darts", method=name,
                           hp_set="DARTS-CIFAR", epochs=epochs, seed=s, options=options) for s in seeds]


def _same(loop, batched, n_test: int = 40) -> None:
    assert batched.status == loop.status == "ok", (loop.failure_reason, batched.failure_reason)
    assert batched.genotype == loop.genotype
    step = 100.0 / n_test  # one test image more or less right: float noise at a decision boundary
    assert abs(batched.arch_score - loop.arch_score) <= step + 1e-9
    if loop.final_alphas is not None:
        torch.testing.assert_close(torch.tensor(batched.final_alphas), torch.tensor(loop.final_alphas),
                                   rtol=1e-4, atol=1e-6)
        assert abs(batched.oneshot_score - loop.oneshot_score) <= 100.0 / 32 + 1e-9
        assert batched.extra["hessian_eigenvalue"] == pytest.approx(loop.extra["hessian_eigenvalue"], rel=1e-3,
                                                                    abs=1e-5)


@pytest.mark.parametrize("method", ["darts", "random"])
def test_batched_trials_equal_loop_trials(data_dir, method):
    """Every trial matches the loop: same genotype, alphas to 1e-4, scores to one test image.
    One epoch: its alphas agree to 5e-9. In a second epoch Adam can lift the rounding of a
    near-zero gradient entry far above it (measured 2026-12-01 on an AVX-512 Xeon: seed 2's alphas
    1.1e-5 apart at 14 of 224 entries, the others 5e-9; genotypes and scores still equal), and
    where it happens depends on the CPU's kernels, as in the mixers' test below."""
    specs = _specs(method, epochs=1)
    assert batching_reason(specs[0]) == ""
    batched = run_batch(specs, "cpu", batched=True)
    assert all(r.provenance["engine"] == "trial-axis" and r.extra["batch_size"] == 3 for r in batched)
    for spec, result in zip(specs, batched):
        _same(run_trial(spec, "cpu"), result)
    assert len({str(r.genotype) for r in batched}) > 1  # seeds differ


def test_batched_random_search_picks_the_loops_candidate(data_dir):
    specs = _specs("random-search", seeds=(4, 5), method={"k": 2})
    batched = run_batch(specs, "cpu", batched=True)
    for spec, result in zip(specs, batched):
        loop = run_trial(spec, "cpu")
        _same(loop, result)
        assert [c["genotype"] for c in result.extra["candidates"]] == [c["genotype"] for c in loop.extra["candidates"]]


def test_trial_results_do_not_depend_on_batch_mates(data_dir):
    """A trial's result is bit for bit the same in a batch of two or of four (the executor's batch
    plan depends on workers and on what a resumed study still has to run)."""
    two = run_batch(_specs("darts", seeds=(0, 1)), "cpu", batched=True)
    four = run_batch(_specs("darts", seeds=(3, 0, 2, 1)), "cpu", batched=True)
    assert two[0].final_alphas == four[1].final_alphas and two[1].final_alphas == four[3].final_alphas
    assert two[0].genotype == four[1].genotype and two[0].arch_score == four[1].arch_score


def test_second_order_runs_batched_with_each_trials_own_radius(data_dir):
    """DARTS 2nd order runs batched, and a trial does not depend on its batch mates (bit for bit).
    Whole trials are not compared with the loop: the finite-difference hypergradient is chaotic in
    float noise (after one weight step, 6e-8 of weight noise moves the loop's own hypergradient by
    2e-3 relative on this space; docs/engine.md), so the per-step test below checks it."""
    specs = _specs("darts-2nd", seeds=(0, 1))
    assert batching_reason(specs[0]) == ""
    batched = run_batch(specs, "cpu", batched=True)
    assert all(r.status == "ok" and r.provenance["engine"] == "trial-axis" for r in batched)
    others = run_batch(_specs("darts-2nd", seeds=(2, 0, 1)), "cpu", batched=True)
    alone = run_batch(specs[1:], "cpu", batched=True)  # K = 1: runs beside a shadow copy
    assert alone[0].extra["shadow_copy"] and alone[0].extra["batch_size"] == 1
    for other in (others[2], alone[0]):
        assert other.final_alphas == batched[1].final_alphas and other.genotype == batched[1].genotype
        assert other.arch_score == batched[1].arch_score


def test_second_order_gradient_equals_the_loop_estimator_per_trial():
    """One K = 2 hypergradient of the cell supernet (each trial its own finite-difference radius)
    against SecondOrder on each trial's own K = 1 network (unstacked) and batches: equal to float precision."""
    import torch.nn.functional as F

    from harness.methods.estimators import SecondOrder
    from harness.spaces.darts_cell import SearchConfig, SearchNetwork
    from harness.spaces.darts_cell.networks import stack_trials, unstack_trial

    torch.manual_seed(0)
    config = SearchConfig(n_cells=3, channels=2, n_classes=10, in_channels=1)
    k, n_edges = 2, 14
    stacked = stack_trials([SearchNetwork(config, n_trials=1) for _ in range(k)]).train()
    alpha = 1e-3 * torch.randn(k, 2 * n_edges, 8)
    inputs = {split: [torch.randn(8, 1, 12, 12) for _ in range(k)] for split in ("train", "val")}
    labels = {split: [torch.randint(0, 10, (8,)) for _ in range(k)] for split in ("train", "val")}

    def loss(net, a, x, y):
        w = torch.softmax(a, -1)
        out = net(x, w[:, :n_edges], w[:, n_edges:], relaxed=True)
        return sum(F.cross_entropy(out[t], y[t]) for t in range(out.shape[0]))

    def batch(split, trials):
        return torch.cat([inputs[split][t] for t in trials], 1), [labels[split][t] for t in trials]

    params = [p for p in stacked.parameters() if p.requires_grad]
    grad = SecondOrder(0.01).alpha_gradient(alpha, params, lambda a: loss(stacked, a, *batch("train", range(k))),
                                            lambda a: loss(stacked, a, *batch("val", range(k))), 0.025)
    for t in range(k):
        single = unstack_trial(stacked, t).train()
        expected = SecondOrder(0.01).alpha_gradient(
            alpha[t:t + 1].clone(), [p for p in single.parameters() if p.requires_grad],
            lambda a, t=t, net=single: loss(net, a, *batch("train", [t])),
            lambda a, t=t, net=single: loss(net, a, *batch("val", [t])), 0.025)
        torch.testing.assert_close(grad[t], expected[0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(grad[0], grad[1])


def test_p_darts_runs_batched_on_cells_each_trial_keeping_its_own_ops(data_dir, monkeypatch):
    """P-DARTS's stages on the trial axis of the cell space: each trial keeps its own ops. A dropped
    op with per-trial state (pooling's BatchNorm, the reduction cells' factorized-reduce skip) runs
    for every trial with weight 0 where it was dropped, its dropout drawing for the keeping trials
    only; a stateless one (the normal cells' identity skip) runs for the keeping trials only. Every
    trial of the K = 3 batch ends as it ends alone, and as beside other batch mates (bit for bit)."""
    from test_trial_axis_stages import spy_batch_masks

    masks = spy_batch_masks(monkeypatch)
    stages = {"cell_stage_cells": [2, 3], "cell_stage_ops_kept": [8, 3], "cell_stage_dropout": [0.3, 0.5]}
    specs = _specs("p-darts", epochs=2, method=stages)
    assert batching_reason(specs[0]) == ""
    batched = run_batch(specs, "cpu", batched=True)
    assert masks and any(not torch.equal(m[0], m[t]) for m in masks for t in range(1, 3))  # trials kept other ops
    for spec, result in zip(specs, batched):
        assert result.extra["batch_size"] == 3
        alone = run_trial(spec, "cpu")
        _same(alone, result)
        assert result.extra["stages"] == alone.extra["stages"] == [
            {"cells": 2, "epochs": 1, "ops_kept": 8}, {"cells": 3, "epochs": 1, "ops_kept": 3}]
    others = run_batch(_specs("p-darts", seeds=(5, 1), epochs=2, method=stages), "cpu", batched=True)
    assert others[1].final_alphas == batched[1].final_alphas and others[1].genotype == batched[1].genotype
    assert others[1].arch_score == batched[1].arch_score


@pytest.mark.parametrize("method,extra", [
    ("pc-darts", {"method": {"channel_fraction": 2}}),
    ("darts-minus", {}),
    ("noisy-darts", {}),
])
def test_mixers_and_partial_channels_run_batched_on_cells(data_dir, method, extra):
    """PC-DARTS's partial channels and edge weights, DARTS-'s auxiliary skip and NoisyDARTS's noise
    (per trial, on each trial's channel block) in a K = 3 batch give each trial its loop result.
    One epoch: the alphas then agree to 5e-9; in DARTS-'s second epoch Adam lifts the rounding of
    one near-zero gradient entry of seed 1 to 9e-6 (plain DARTS stays at 5e-9)."""
    specs = _specs(method, epochs=1, **extra)
    assert batching_reason(specs[0]) == ""
    batched = run_batch(specs, "cpu", batched=True)
    assert all(r.extra["batch_size"] == 3 for r in batched)
    for spec, result in zip(specs, batched):
        _same(run_trial(spec, "cpu"), result)
