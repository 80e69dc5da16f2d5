"""DAS-single's pre-trained ops and DARTS+PT's discretization on the trial axis: each trial of a
K = 3 batch gives what it gives alone (K = 1).

DAS-single pre-trains the K trials' all-lgd and all-net networks as one stacked network: with the
compiled kernel a trial's candidates are bitwise the same in any batch, and they differ from the
lone trial's (plain Conv1d modules) by float rounding, which Adam's sign-like first steps of the
pre-training and of the alpha search grow to ~1e-4 in alpha (docs/engine.md). DARTS+PT runs the K
trials' rule at once (each probe scores all K supernets, the fine-tuning trains them as one): from
the same supernet, optimizer state and streams each trial decides as the trial alone and draws the
same batches; its fine-tuned weights agree to the K-trial CNN's rounding (it sums in another order
than Conv1d), bitwise independent of its batch mates with the compiled kernel. The
whole-trial test of DARTS+PT trains the weights with SGD: Adam's first, sign-like steps turn that
rounding into lr-sized differences (docs/engine.md), which would hide nothing of this code but
make the comparison loose."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.methods import search_finish, training, trial_finish
from harness.methods.context import TrialDiverged
from harness.runner.spec import TrialSpec
from harness.runner.trial import batching_reason, build_context
from harness.spaces.kernels import fused_cnn
from harness.spaces.trial_axis import shared_key, stack_state_dicts, trial_view

FAST = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 4}}
SEEDS = (3, 1, 4)
# preset -> (hyperparameter set, overrides): alphas that move well beyond the tolerances.
SETTINGS = {
    "das-single": ("BOHB-DAS-single", {}),  # Adam on alpha, lr 0.025; the weights are frozen
    "darts-pt": ("H1", {"alpha_lr": 0.05, "param_optimizer": "sgd", "param_lr": 0.01}),
}
ONESHOT_RTOL, ALPHA_ATOL = 1e-4, 1e-5
# DAS-single: the lone trial pre-trains with other float rounding (see above), which Adam on alpha
# (lr 0.025) carries into alpha: measured up to 3.2e-4 in alpha and 3.4e-4 relative in the one-shot
# PSNR on the CPU of 2026-11-30, 2.2e-3 at one alpha entry on an AVX-512 Xeon (2026-12-01).
DAS_SINGLE_ALPHA_ATOL, DAS_SINGLE_ONESHOT_RTOL = 5e-3, 2e-3
SHORT_PT = {"finetune_steps": 3}  # DARTS+PT's fine-tuning between decisions, shortened
FINETUNE_RTOL = 1e-2


def _spec(method_name: str, seed: int, epochs: int, hp: tuple[str, dict] | None = None,
          method_options: dict | None = None) -> TrialSpec:
    hp_set, overrides = hp or ("H1", {})
    return TrialSpec.make(dataset="blur", space="sequential", op_set="all", method=method_name, hp_set=hp_set,
                          seed=seed, epochs=epochs, hp_overrides={"warmup_epochs": 0, **overrides},
                          options={**FAST, "method": method_options or {}})


def _contexts(method_name: str, seeds, epochs: int, hp: tuple[str, dict] | None = None,
              method_options: dict | None = None):
    ctxs = []
    for seed in seeds:
        method, ctx = build_context(_spec(method_name, seed, epochs, hp, method_options), "cpu")
        ctxs.append(ctx)
    return method, ctxs


def _streams(ctx) -> list[torch.Tensor]:
    return [ctx.streams.generator(name).get_state() for name in ("data", "noise_op", "arch")]


@pytest.mark.parametrize("method_name", ["das-single", "darts-pt"])
def test_each_trial_of_a_batch_equals_the_trial_alone(method_name):
    assert batching_reason(_spec(method_name, 0, 2)) == ""
    hp = SETTINGS[method_name]
    method, ctxs = _contexts(method_name, SEEDS, 2, hp)
    batched = method.search_trials(ctxs)
    for seed, ctx, (outcome, failure) in zip(SEEDS, ctxs, batched):
        method, (alone_ctx,) = _contexts(method_name, (seed,), 2, hp)
        ((alone, alone_failure),) = method.search_trials([alone_ctx])
        assert failure == alone_failure == ""
        assert outcome.genotype == alone.genotype, seed
        single = method_name == "das-single"
        rtol, atol = (DAS_SINGLE_ONESHOT_RTOL, DAS_SINGLE_ALPHA_ATOL) if single else (ONESHOT_RTOL, ALPHA_ATOL)
        assert outcome.oneshot_score == pytest.approx(alone.oneshot_score, rel=rtol)
        final, lone = torch.tensor(outcome.final_alphas), torch.tensor(alone.final_alphas)
        torch.testing.assert_close(final, lone, rtol=0, atol=atol)
        assert float((lone - torch.tensor(alone.alpha_history[0])).abs().max()) > 20 * atol  # alpha moved
        # every stream where the trial alone leaves it (DARTS+PT's fine-tuning draws from data and noise)
        for got, want in zip(_streams(ctx), _streams(alone_ctx)):
            assert torch.equal(got, want), seed
    assert batched[0][0].final_alphas != batched[1][0].final_alphas  # the seeds differ


@pytest.mark.skipif(not fused_cnn.available(), reason=f"compiled kernel unavailable: {fused_cnn.unavailable_reason()}")
def test_das_single_candidates_do_not_depend_on_the_batch():
    """A trial's pre-trained (and frozen) lgd / net layers are bit for bit the same in a batch of 3
    and in a batch of 2 with another mate, and within float rounding of the lone trial's."""
    method, ctxs = _contexts("das-single", SEEDS, 2)
    run = method.start(ctxs, ctxs[0].space, 2)
    assert not any(p.requires_grad for p in run.model.parameters())
    state = run.model.state_dict()
    method, pair = _contexts("das-single", (SEEDS[1], 9), 2)
    pair_state = method.start(pair, pair[0].space, 2).model.state_dict()
    method, (ctx,) = _contexts("das-single", (SEEDS[1],), 2)
    alone = method.start([ctx], ctx.space, 2).model.state_dict()
    candidates = [key for key in state if ".ops.0." in key or ".ops.1." in key]  # lgd, net
    assert any(key.endswith("conv1.weight") for key in candidates)
    mine_all, alone_all = [], []
    for key in candidates:
        if shared_key(key):
            continue
        mine = trial_view(state[key], 3)[1]
        assert torch.equal(mine, trial_view(pair_state[key], 2)[0]), key
        mine_all.append(mine.flatten())
        alone_all.append(alone[key].flatten())
    # Adam's steps grow the rounding difference to ~lr per weight; over all candidate weights it
    # stays small against their size
    mine_all, alone_all = torch.cat(mine_all), torch.cat(alone_all)
    assert float((mine_all - alone_all).norm() / alone_all.norm()) < 1e-2
    lgd = [key for key in state if ".ops.0." in key and key.endswith("conv1.weight")][0]
    assert not torch.equal(trial_view(state[lgd], 3)[0], trial_view(state[lgd], 3)[1])  # trials differ


def _stack_optimizer_states(states: list[dict]) -> dict:
    """The K-trial weight optimizer's state from its K lone trials' (the inverse of the code under test)."""
    stacked = {}
    for index, first in states[0]["state"].items():
        stacked[index] = {}
        for key, value in first.items():
            values = [s["state"][index][key] for s in states]
            if key == "step" or not torch.is_tensor(value):
                stacked[index][key] = value
            else:
                stacked[index][key] = torch.stack(values) if value.dim() == 0 else torch.cat(values)
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


def _lone_finishes(seeds) -> list[dict]:
    """Each trial alone, searched for one epoch: its supernet, weight optimizer, alpha and streams
    before DARTS+PT's rule, and its genotype, fine-tuned supernet and streams after."""
    alone = []
    for seed in seeds:
        method, (ctx,) = _contexts("darts-pt", (seed,), 1, method_options=SHORT_PT)
        real_finish = method.finish
        seen = {}

        def spy(run, real_finish=real_finish, seen=seen):
            seen["before"] = {
                "model": copy.deepcopy(run.model.state_dict()), "w_opt": copy.deepcopy(run.w_opt.state_dict()),
                "alpha": run.alpha.detach().clone(), "streams": _streams(run.ctx),
            }
            results = real_finish(run)
            seen["after"] = copy.deepcopy(run.model.state_dict())
            return results

        method.finish = spy
        ((outcome, _),) = method.search_trials([ctx])
        alone.append({**seen["before"], "genotype": outcome.genotype, "after": seen["after"],
                      "streams_after": _streams(ctx)})
    return alone


def _batched_finish(seeds, alone: list[dict]):
    """The batched finish of ``seeds`` started from their lone trials' states before the rule."""
    method, ctxs = _contexts("darts-pt", seeds, 1, method_options=SHORT_PT)
    run = method.start(ctxs, ctxs[0].space, 1)
    run.model.load_state_dict(stack_state_dicts([a["model"] for a in alone]))
    with torch.no_grad():
        run.alpha.copy_(torch.cat([a["alpha"] for a in alone]))
    run.w_opt.load_state_dict(_stack_optimizer_states([a["w_opt"] for a in alone]))
    for ctx, a in zip(ctxs, alone):
        for name, value in zip(("data", "noise_op", "arch"), a["streams"]):
            ctx.streams.generator(name).set_state(value)
    results = method.finish(run)
    return results, run.model.state_dict(), ctxs


def test_darts_pt_rule_of_a_batch_is_each_trial_alone():
    """From the same supernet, optimizer state (Adam: moments and step) and streams, the K trials'
    rule at once gives each trial the lone trial's genotype and stream states exactly, and its
    fine-tuned supernet to the K-trial CNN's float rounding (it sums in another order than Conv1d)."""
    alone = _lone_finishes(SEEDS)
    results, state, ctxs = _batched_finish(SEEDS, alone)
    for t, ((outcome, failure), a) in enumerate(zip(results, alone)):
        assert failure == "" and outcome.genotype == a["genotype"], t
        for got, want in zip(_streams(ctxs[t]), a["streams_after"]):
            assert torch.equal(got, want), t
    before, after = stack_state_dicts([a["model"] for a in alone]), stack_state_dicts([a["after"] for a in alone])
    moved = [key for key in state if not shared_key(key) and not torch.equal(after[key], before[key])]
    assert moved  # the fine-tuning changed the supernet, so the comparison is not vacuous
    # Adam's steps turn rounding into small lr-sized differences (docs/engine.md): measured over all
    # fine-tuned weights against what the fine-tuning itself changed
    change = torch.cat([(after[key] - before[key]).flatten() for key in moved]).norm()
    difference = torch.cat([(state[key] - after[key]).flatten() for key in moved]).norm()
    assert float(difference / change) < FINETUNE_RTOL
    counters = [key for key in state if shared_key(key)]  # BatchNorm's steps: each trial's own count
    assert counters and all(torch.equal(state[key], after[key]) for key in counters)


@pytest.mark.skipif(not fused_cnn.available(), reason=f"compiled kernel unavailable: {fused_cnn.unavailable_reason()}")
def test_darts_pt_rule_does_not_depend_on_the_batch():
    """With the compiled kernel a trial's genotype and fine-tuned supernet are bit for bit the same
    beside two batch mates and beside another one."""
    alone = _lone_finishes(SEEDS + (9,))
    three, state3, _ = _batched_finish(SEEDS, alone[:3])
    two, state2, _ = _batched_finish((SEEDS[1], 9), [alone[1], alone[3]])
    assert three[1][0].genotype == two[0][0].genotype
    for key, value in state3.items():
        if not shared_key(key):
            assert torch.equal(trial_view(value, 3)[1], trial_view(state2[key], 2)[0]), key


def test_a_trial_whose_pretraining_diverges_fails_alone(monkeypatch):
    reason = "diverged: non-finite loss (nan) in training, epoch 0 step 0"
    clean_method, clean_ctxs = _contexts("das-single", SEEDS, 1)
    clean = clean_method.search_trials(clean_ctxs)
    method, ctxs = _contexts("das-single", SEEDS, 1)
    task_type = type(ctxs[0].task)
    real_losses, real_train = task_type.trial_losses, search_finish.train_trials

    def nan_for_trial_1(self, output, batch):  # trial 1's loss turns non-finite
        return real_losses(self, output, batch) + torch.tensor([0.0, float("nan"), 0.0])

    def train_trials(jobs, split):
        if jobs[0].genotype[0] != "net":
            return real_train(jobs, split)
        with monkeypatch.context() as patch:  # only during the all-net pre-training
            patch.setattr(task_type, "trial_losses", nan_for_trial_1)
            return real_train(jobs, split)

    monkeypatch.setattr(search_finish, "train_trials", train_trials)
    results = method.search_trials(ctxs)
    assert results[1] == (None, reason)
    for t in (0, 2):
        assert results[t][1] == ""
        assert results[t][0].genotype == clean[t][0].genotype
        assert results[t][0].final_alphas == clean[t][0].final_alphas
    target = ctxs[1].streams.child(1).seed("data")  # alone, as before: the trial raises
    real_network = training.train_network

    def train_network(network, ctx, *args, **kwargs):
        if ctx.streams.seed("data") == target:
            raise TrialDiverged(reason)
        return real_network(network, ctx, *args, **kwargs)

    monkeypatch.setattr(training, "train_network", train_network)  # what train_from_scratch calls
    method, (ctx,) = _contexts("das-single", (SEEDS[1],), 1)
    with pytest.raises(TrialDiverged, match="in training"):
        method.search_trials([ctx])


def test_a_trial_whose_fine_tuning_diverges_fails_alone(monkeypatch):
    reason = "diverged: non-finite loss (nan) while fine-tuning the supernet during discretization"
    clean_method, clean_ctxs = _contexts("darts-pt", SEEDS, 1, method_options=SHORT_PT)
    clean = clean_method.search_trials(clean_ctxs)
    method, ctxs = _contexts("darts-pt", SEEDS, 1, method_options=SHORT_PT)
    task_type = type(ctxs[0].task)
    real_losses, real_finetune = task_type.trial_losses, trial_finish.SupernetTrialProbe.finetune

    def nan_for_trial_2(self, output, batch):  # trial 2's loss turns non-finite
        return real_losses(self, output, batch) + torch.tensor([0.0, 0.0, float("nan")])

    def finetune(self, weights, steps):  # only while fine-tuning
        with monkeypatch.context() as patch:
            patch.setattr(task_type, "trial_losses", nan_for_trial_2)
            return real_finetune(self, weights, steps)

    monkeypatch.setattr(trial_finish.SupernetTrialProbe, "finetune", finetune)
    results = method.search_trials(ctxs)
    assert results[2] == (None, reason)
    for t in (0, 1):
        assert results[t][1] == "" and results[t][0].genotype == clean[t][0].genotype
        assert results[t][0].final_alphas == clean[t][0].final_alphas
