"""Every search preset of issue 12 runs a tiny trial on the DARTS cell space (loop engine), gives a
genotype in DARTS's format, and its own mechanism acts there (not just DARTS under another name).

Sizes: a 3-cell, 2-channel supernet on 16 MNIST-format images per split at 16 px, batches of 8
(two steps per epoch), one epoch unless a method needs more. Searches skip the end-of-search
Hessian diagnostic (``hessian = "none"``), except the end-to-end PC-DARTS trial.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch

from harness.methods import supernet as net_module
from harness.methods.__main__ import main as list_methods
from harness.methods.perturbations import ParameterFreeDropout
from harness.methods.presets import CELL_PRESETS
from harness.methods.progressive import ProgressiveSearch
from harness.methods.state import SearchState
from harness.methods.supernet import Mixer
from harness.runner import STATUS_OK, TrialSpec, run_trial
from harness.runner.trial import build_context
from harness.spaces.darts_cell import OP_NAMES, edge_index, genotype_from_json
from harness.tasks.data.synthetic import write_mnist

SIZES = {
    "problem": {"n_train": 16, "n_val": 16, "n_retrain": 16, "n_test": 16, "batch_size": 8, "image_size": 16},
    "space": {"n_cells": 3, "channels": 2, "eval_cells": 3, "eval_channels": 4, "auxiliary": False},
}
ISSUE_PRESETS = {
    "pc-darts", "p-darts", "fair-darts", "sdarts-rs", "sdarts-adv", "beta-darts", "darts-minus", "r-darts",
    "darts-es", "darts-plus", "darts-pt", "gdas", "snas", "noisy-darts", "milenas", "idarts",
    "das", "darts", "das-2nd", "darts-2nd",
}
# Presets whose mechanism changes the search itself: same seed, other alphas than plain DAS.
CHANGES_ALPHA = {
    "sdarts-rs": {}, "sdarts-adv": {"steps": 1}, "beta-darts": {}, "darts-minus": {}, "noisy-darts": {},
    "milenas": {}, "idarts": {"neumann_terms": 1}, "gdas": {}, "snas": {},
}


@pytest.fixture(autouse=True, scope="module")
def data_dir(tmp_path_factory):
    root = write_mnist(tmp_path_factory.mktemp("mnist"), n_train=8, n_test=64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_DATA_DIR", str(root))
        yield root


def spec(method: str, epochs: int = 1, options: dict | None = None, space: dict | None = None) -> TrialSpec:
    opts = {"problem": SIZES["problem"], "space": {**SIZES["space"], **(space or {})}}
    if options:
        opts["method"] = options
    return TrialSpec.make(dataset="mnist-proxy", space="darts-cell", op_set="darts", method=method, hp_set="H1",
                          epochs=epochs, seed=0, hp_overrides={"alpha_warmup": False}, options=opts)


def searched(method: str, epochs: int = 1, options: dict | None = None, space: dict | None = None):
    """(method, ctx, outcome) of a search without the Hessian diagnostic; the genotype is checked."""
    method_obj, ctx = build_context(spec(method, epochs, options, space), "cpu")
    method_obj.hessian = "none"
    outcome = method_obj.search(ctx)
    ctx.space.validate(outcome.genotype)
    genotype = genotype_from_json(outcome.genotype)
    assert len(genotype.normal) == len(genotype.reduce) == 8  # two (op, input) pairs for each of 4 nodes
    return method_obj, ctx, outcome


@cache
def das_alphas() -> list:
    return searched("das")[2].final_alphas


def kept_ops(genotype: dict) -> list[tuple[int, str]]:
    """(flat position, op) of every kept pair: normal edges 0..13, reduction edges 14..27."""
    g = genotype_from_json(genotype)
    return [(offset + edge_index(2 + n // 2, source), op)
            for offset, pairs in ((0, g.normal), (14, g.reduce)) for n, (op, source) in enumerate(pairs)]


def test_listing_says_each_preset_runs_on_darts_cell(capsys):
    assert ISSUE_PRESETS <= set(CELL_PRESETS)
    list_methods([])
    where = {line.split("\t")[0]: line.split("\t")[2] for line in capsys.readouterr().out.strip().splitlines()}
    for name in ISSUE_PRESETS:
        assert "cifar10,cifar100,mnist-proxy x darts-cell" in where[name], where[name]


@pytest.mark.parametrize("name", sorted(CHANGES_ALPHA))
def test_preset_runs_on_cells_and_departs_from_das(name):
    _, _, outcome = searched(name, options=CHANGES_ALPHA[name] or None)
    assert all(op != "none" for _, op in kept_ops(outcome.genotype))
    alphas = torch.tensor(outcome.final_alphas)
    assert alphas.shape == (28, 8) and torch.isfinite(alphas).all()
    assert not torch.equal(alphas, torch.tensor(das_alphas()))


def test_pc_darts_trial_mixes_a_quarter_of_the_channels_and_learns_edge_weights():
    """End to end through the runner (search, Hessian diagnostic, retraining, record)."""
    r = run_trial(spec("pc-darts", space={"channels": 4}))
    assert r.status == STATUS_OK, r.failure_reason
    assert 0 <= r.arch_score <= 100 and math.isfinite(r.extra["hessian_eigenvalue"])
    genotype_from_json(r.genotype)
    assert torch.tensor(r.alpha_history).shape == (2, 28, 8)  # the record keeps (positions x ops) ...
    betas = torch.tensor(r.extra["edge_beta_history"])  # ... and beta, trained with alpha, beside it
    assert betas.shape == (2, 28) and not torch.equal(betas[0], betas[-1])
    method, ctx = build_context(spec("pc-darts", space={"channels": 4}), "cpu")
    run = method.start([ctx], ctx.space, 1)
    assert run.alpha.shape == (1, 28, 9)
    assert run.model.net.cells[0].ops[0][0].bn.running_mean.numel() == 1  # max_pool of a 4-channel cell sees 1


def test_p_darts_grows_the_cells_and_drops_ops(monkeypatch):
    masks = []
    start = ProgressiveSearch.start

    def spy(self, ctxs, space, epochs, op_mask=None, hooks=None):
        masks.append(op_mask)
        return start(self, ctxs, space, epochs, op_mask, hooks)

    monkeypatch.setattr(ProgressiveSearch, "start", spy)
    _, _, outcome = searched("p-darts", epochs=3, options={"cell_stage_cells": [3, 3, 4]}, space={"n_cells": 4})
    assert [(s["cells"], s["ops_kept"]) for s in outcome.extra["stages"]] == [(3, 8), (3, 5), (4, 3)]
    assert masks[0] is None and (masks[1].sum(1) == 5).all() and (masks[2].sum(1) == 3).all()
    for position, op in kept_ops(outcome.genotype):  # the final stage chooses among its kept ops only
        assert masks[2][position, OP_NAMES.index(op)]
    state = SearchState(ops=OP_NAMES)
    dropout = ParameterFreeDropout()
    assert dropout.targets("skip_connect", state) and not dropout.targets("max_pool_3x3", state)


def test_fair_darts_parses_by_threshold_in_darts_format():
    _, ctx, outcome = searched("fair-darts", options={"threshold": 0.5})
    probs = torch.sigmoid(torch.tensor(outcome.final_alphas))
    assert outcome.genotype == ctx.space.threshold_genotype(probs, ctx.ops, 0.5)
    for node in range(4):  # kept pairs first, strongest first; 'none' pads a node with fewer kept inputs
        pairs = genotype_from_json(outcome.genotype).normal[2 * node : 2 * node + 2]
        assert pairs[0][0] != "none" or pairs[1][0] == "none"
    nothing = ctx.space.threshold_genotype(torch.full((28, 8), 0.5), ctx.ops, 0.85)
    assert {op for _, op in kept_ops(nothing)} == {"none"} and ctx.space.flatten(nothing) == []  # no edge kept
    batch = ctx.task.sample(torch.Generator().manual_seed(0), "val")
    logits, _ = ctx.space.network(nothing)(batch.inputs)  # a network of zero cells still builds and runs
    loss = torch.nn.functional.cross_entropy(logits, batch.targets)
    loss.backward()
    assert torch.isfinite(loss)


def test_darts_es_tracks_the_hessian_eigenvalue_each_epoch():
    _, _, outcome = searched("darts-es", options={"iterations": 2})
    signal = outcome.extra["early_stopping_signal"]
    assert len(signal) == 1 and math.isfinite(signal[0])


def test_darts_plus_counts_skip_connections_in_the_normal_cell():
    _, _, outcome = searched("darts-plus", epochs=2, options={"criterion": "parameter-free", "max_skip": 0})
    assert outcome.extra["stopped_early"] and outcome.extra["epochs_run"] == 1
    skips = sum(op == "skip_connect" for op, _ in genotype_from_json(outcome.genotype).normal)
    assert outcome.extra["early_stopping_signal"] == [float(skips)]


def test_darts_pt_selects_ops_then_edges_by_perturbation(monkeypatch):
    monkeypatch.setattr(net_module, "PROBE_BATCHES", 1)
    calls = []
    score = net_module.SupernetProbe.score
    monkeypatch.setattr(net_module.SupernetProbe, "score", lambda self, w: calls.append(w.clone()) or score(self, w))
    _, _, outcome = searched("darts-pt", options={"finetune_steps": 0})
    assert len(calls) == 28 * 7 + 28  # 7 non-'none' ops on every edge, then every edge of every node
    assert all(op != "none" for _, op in kept_ops(outcome.genotype))
    final = calls[-1]  # the last edge decision: one-hot rows, only the last node's edges left to judge
    assert set(final.sum(1).tolist()) <= {0.0, 1.0}


def test_r_darts_multiplies_the_weight_decay():
    method, ctx, _ = searched("r-darts")
    run = method.start([ctx], ctx.space, 1)
    assert run.w_opt.param_groups[0]["weight_decay"] == pytest.approx(3 * ctx.hp.param_weight_decay)


@pytest.mark.parametrize("partial", [1, 2])
def test_mixer_on_cells_equals_the_fused_sum(partial):
    """The seam itself: a mixer that masks nothing computes what the cells' own weighted sum does
    (with partial channels too, where the mixer sees an edge's mixed part only)."""
    _, ctx = build_context(spec("das"), "cpu")
    state = SearchState(ops=tuple(ctx.ops))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ctx.space.with_partial_channels(partial).supernet(ctx.ops).eval()
    x = ctx.task.sample(torch.Generator().manual_seed(0), "val").inputs
    weights = torch.softmax(torch.randn(28, 8, generator=torch.Generator().manual_seed(1)), -1)
    fused = model(x, weights, mixer=Mixer(state))  # a mixer that changes nothing keeps the fused path
    mixed = model(x, weights, mixer=Mixer(state, op_mask=torch.ones(28, 8, dtype=torch.bool)))
    torch.testing.assert_close(mixed, fused)
