"""Method presets: every preset runs a short trial; the search loop's own defining properties."""

import math
from pathlib import Path

import pytest
import torch

from harness.methods import METHODS, ONE_D_PRESETS, ComposedSearch, make_method
from harness.methods.__main__ import main as list_methods
from harness.methods.progressive import ProgressiveSearch
from harness.methods.regularizers import ZeroOneLoss
from harness.methods.relaxation import SigmoidRelaxation
from harness.methods.supernet import Mixer, mixed_ops
from harness.methods.training import check_finite, task_loss
from harness.runner import STATUS_FAILED, STATUS_OK, TrialSpec, run_trial
from harness.runner.trial import build_context
from harness.spaces import OpContext
from harness.study.config import load_study

FAST = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 4}}
REPO = Path(__file__).resolve().parents[1]
BASELINES = ("lg-only", "nets-only", "random", "random-search")


def spec(method, epochs=3, seed=1, space="sequential", op_set="all", hp_set="H1", options=None):
    return TrialSpec.make(
        dataset="blur", space=space, op_set=op_set, method=method, hp_set=hp_set, seed=seed, epochs=epochs,
        hp_overrides={"warmup_epochs": 1}, options={**FAST, **(options or {})},
    )


@pytest.mark.parametrize("method", ONE_D_PRESETS)
def test_every_1d_preset_runs_a_short_trial(method):
    r = run_trial(spec(method))
    assert r.status == STATUS_OK, r.failure_reason
    assert math.isfinite(r.oneshot_score) and math.isfinite(r.arch_score)
    assert len(r.genotype) == 10 and set(r.genotype) <= {"lgd", "net", "roll", "noise"}
    assert math.isfinite(r.extra["hessian_eigenvalue"])
    assert len(r.alpha_history) == r.extra["epochs_run"] + 1 or method == "p-darts"
    assert r.extra["epochs_run"] <= 3


@pytest.mark.parametrize("method", ["fair-darts", "gdas", "darts-pt"])
def test_presets_run_on_the_nonsequential_space(method):
    r = run_trial(spec(method, epochs=2, space="nonsequential"))
    assert r.status == STATUS_OK, r.failure_reason
    assert len(r.genotype) == 2 and all(len(cell) == 15 for cell in r.genotype)


def test_cell_only_presets_say_where_they_run():
    assert METHODS.get("pc-darts").spaces == ("darts-cell",) and "pc-darts" not in ONE_D_PRESETS
    r = run_trial(spec("pc-darts"))
    assert r.status == STATUS_FAILED and "does not run on space 'sequential'" in r.failure_reason


def test_preset_hyperparameters_are_options_with_clear_errors():
    assert make_method("fair-darts", {"w01": 3.0}).regularizers[0].weight == 3.0
    assert make_method("darts-plus", {"criterion": "parameter-free"}).early_stopping.threshold == 6
    with pytest.raises(ValueError, match="its options: threshold, w01"):
        make_method("fair-darts", {"w1": 3.0})


def test_method_listing_names_entry_and_where_it_runs(capsys):
    list_methods([])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(METHODS.names())
    for line in lines:
        name, entry, where, _ = line.split("\t")
        known = ("blur,downsampling x ", "cifar10,cifar100,mnist-proxy x darts-cell", "needs ")
        assert entry.startswith("M") and all(group.startswith(known) for group in where.split("; "))
    assert any(line.startswith("pc-darts\tM16\tcifar10,cifar100,mnist-proxy x darts-cell\t") for line in lines)


def _plain_das(ctx) -> tuple[list, torch.Tensor]:
    """DARTS first order written out directly (no components), for the equivalence test."""
    problem, hp, streams = ctx.problem, ctx.hp, ctx.streams
    with streams.seeded_init("init"):
        model = ctx.space.supernet(ctx.ops, ctx.op_config)
        alpha = 1e-3 * torch.randn(ctx.space.n_positions, len(ctx.ops))
    alpha.requires_grad_(True)
    w_opt = torch.optim.Adam(model.parameters(), lr=hp.param_lr, weight_decay=hp.param_weight_decay, foreach=True)
    a_opt = torch.optim.SGD([alpha], lr=hp.alpha_lr, weight_decay=hp.alpha_weight_decay)
    data, noise = streams.generator("data"), streams.generator("noise_op")
    model.train()
    for epoch in range(ctx.epochs):
        active = epoch >= hp.warmup_epochs
        factor = 1.0 - (epoch - hp.warmup_epochs) / (ctx.epochs - hp.warmup_epochs) if active else 0.0
        for group in a_opt.param_groups:
            group["lr"] = hp.alpha_lr * factor
        for _ in range(problem.config.batches_per_epoch):
            loss = task_loss(model, ctx.task, ctx.task.sample(data), noise, torch.softmax(alpha.detach(), -1))
            check_finite(loss, "")
            w_opt.zero_grad()
            loss.backward()
            w_opt.step()
            if not active:
                continue
            val = task_loss(model, ctx.task, ctx.task.sample(data), noise, torch.softmax(alpha, -1))
            a_opt.zero_grad()
            val.backward()
            model.zero_grad()
            a_opt.step()
    return ctx.space.discretize(alpha.detach(), ctx.ops), alpha.detach()


def test_composition_without_components_is_plain_das():
    s = spec("das", epochs=3)
    method, ctx = build_context(s, "cpu")
    outcome = method.search(ctx)
    _, ref_ctx = build_context(s, "cpu")
    genotype, alpha = _plain_das(ref_ctx)
    assert outcome.genotype == genotype
    torch.testing.assert_close(torch.tensor(outcome.final_alphas), alpha, rtol=0, atol=0)


def test_mixer_without_components_equals_plain_mixing():
    method, ctx = build_context(spec("das"), "cpu")
    run = method.start([ctx], ctx.space, 1)
    x, y = ctx.problem.sample(8, torch.Generator().manual_seed(0))
    weights = torch.softmax(torch.randn(10, 4, generator=torch.Generator().manual_seed(1)), -1)
    plain = run.model(ctx.problem.network_input(y), OpContext(y, ctx.problem.operator, torch.Generator()), weights)
    mixed = run.model(
        ctx.problem.network_input(y), OpContext(y, ctx.problem.operator, torch.Generator(), Mixer(run.state)), weights
    )
    assert torch.equal(plain, mixed)
    assert [m.position for m in mixed_ops(run.model)] == list(range(10))


def test_diagnostics_do_not_change_the_trial():
    s = spec("das", epochs=3)
    results = []
    for hessian in ("none", "epochs"):
        _, ctx = build_context(s, "cpu")
        outcome = ComposedSearch(name="das", hessian=hessian).search(ctx)
        results.append(outcome)
    assert results[0].genotype == results[1].genotype and results[0].oneshot_score == results[1].oneshot_score
    assert results[0].final_alphas == results[1].final_alphas
    per_epoch = results[1].extra["hessian_eigenvalue_per_epoch"]
    assert len(per_epoch) == 3 and all(math.isfinite(v) for v in per_epoch)


def test_ablation_gradient_matches_each_cells_own_loss():
    """D-DARTS: row i of the ablation gradient is d L_AB^i / d alpha_i, computed here by brute force."""
    method = ComposedSearch(relaxation=SigmoidRelaxation(), regularizers=(ZeroOneLoss(),), ablation_weight=1.0)
    _, ctx = build_context(spec("das"), "cpu")
    run = method.start([ctx], ctx.space, 1)
    with torch.no_grad():
        run.alpha.copy_(torch.randn(run.alpha.shape, generator=torch.Generator().manual_seed(5)))
    val = ctx.task.sample(torch.Generator().manual_seed(2))
    replay = method._replayer(run)
    (fast,) = method._ablation_gradient(run, val, replay)

    a = run.alpha[0].detach().requires_grad_(True)
    full = method._replayed_losses(run, a.unsqueeze(0), val, replay)[0]
    m = []
    for i in range(10):
        run.mixer.deactivated = {i: "identity"}
        m.append(full - method._replayed_losses(run, a.unsqueeze(0), val, replay)[0])
    run.mixer.deactivated = {}
    m = torch.stack(m)
    for i in range(10):
        l_ab = (m[i] - m.mean()) / m.mean()
        (g,) = torch.autograd.grad(l_ab, [a], retain_graph=True)
        torch.testing.assert_close(fast[i], g[i], rtol=1e-4, atol=1e-7)


def test_das_single_searches_alpha_over_frozen_pretrained_ops():
    method, ctx = build_context(spec("das-single", epochs=2), "cpu")
    run = method.start([ctx], ctx.space, 2)
    frozen = {k: v.clone() for k, v in run.model.state_dict().items()}
    fresh = ctx.space.supernet(ctx.ops, ctx.op_config).state_dict()
    assert not any(p.requires_grad for p in run.model.parameters()) and run.w_opt is None
    lgd_weight = "layers.0.ops.0.net.conv1.weight"
    assert not torch.equal(frozen[lgd_weight], fresh[lgd_weight])  # trained, not a fresh init
    alpha_before = run.alpha.detach().clone()
    method.optimize(run, 2)
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(alpha_before, run.alpha.detach())


def test_progressive_stages_carry_the_best_ops():
    previous = torch.tensor([[0.1, 0.5, 0.3, 0.1], [0.4, 0.1, 0.2, 0.3]])
    mask = ProgressiveSearch.carry_mask(previous, n_positions=4, keep=2)
    assert mask.tolist() == [[False, True, True, False]] * 2 + [[True, False, False, True]] * 2
    method = make_method("p-darts")
    assert method.stage_epochs(10) == [3, 3, 4]
    r = run_trial(spec("p-darts", epochs=3))
    assert [s["layers"] for s in r.extra["stages"]] == [4, 7, 10] and r.extra["epochs_run"] == 3


def test_methods_study_lists_every_1d_preset_with_own_defaults():
    study = load_study(REPO / "studies" / "methods_blur.yaml")
    rows = {(r.spec.method, r.spec.hp_set) for r in study.rows}
    assert {m for m, _ in rows} == set(ONE_D_PRESETS) | set(BASELINES)
    assert ("das-single", "BOHB-DAS-single") in rows and ("das-single", "H1") in rows
    assert len(rows) == len(study.rows)  # [H1, method-default] is not duplicated for H1 presets
    assert study.trials == 75 and all(r.spec.op_set == "all" and r.spec.space == "sequential" for r in study.rows)
