"""The parts of a search's finish and start that act on one trial's whole supernet, over K trials.

DAS-single's pre-trained candidates (``load_candidates``): the K trials' pre-trained network's layers
go into the K-trial supernet's candidates (``SearchFinish._load_pretrained``).

DARTS+PT's discretization fine-tunes the supernet between edge decisions with the run's weight
optimizer and scores it on the trial's probe batches: a sequence of decisions per trial that the
trial axis cannot batch (each trial decides other edges). After the batched search each trial's
rule therefore runs on that trial alone (K = 1): its supernet taken out of the stacked one, its
own search state, its data and noise generators where the batch left them, and a weight optimizer
holding its slice of the batched optimizer's state. So it computes what the trial alone computes
from the same supernet. The fine-tuned supernet goes back into the stacked one, whose inherited
metrics (issue 12) are then the ones the trial alone reports after its discretization.
"""

from __future__ import annotations

import torch

from harness.methods.context import TrialDiverged
from harness.methods.discretization import ArgmaxDiscretization
from harness.methods.supernet import Mixer, SearchRun, SupernetProbe
from harness.methods.trial_batch import TrialBatch
from harness.spaces.trial_axis import shared_key, store_trial, trial_view


@torch.no_grad()
def poison_trial(module: torch.nn.Module, k: int, trial: int) -> None:
    """NaN in every floating tensor of trial ``trial`` of a K-trial module: a trial that has failed
    holds nothing that could pass for trained weights; its batch mates are unaffected (its NaNs
    stay in its channels, and a failed trial leaves the sum)."""
    for key, value in module.state_dict().items():
        if not shared_key(key) and value.is_floating_point():
            trial_view(value, k)[trial].fill_(float("nan"))


def load_candidates(targets: list, index: int, sources: list, failed: list[str]) -> None:
    """DAS-single: candidate ``index`` of every mixed op in ``targets`` (a K-trial supernet's) from
    the layers of the K trials' pre-trained network (``sources``, its mixed ops in position order,
    stacked over the same K trials); a trial whose pre-training failed gets NaN there
    (``poison_trial``)."""
    k = len(failed)
    for target, source in zip(targets, sources, strict=True):
        target.ops[index].load_state_dict(source.ops[0].state_dict())
        for t, reason in enumerate(failed):
            if reason:
                poison_trial(target.ops[index], k, t)


def trial_optimizer(
    stacked_opt: torch.optim.Optimizer | None, stacked: torch.nn.Module, single: torch.nn.Module, k: int, trial: int
) -> torch.optim.Optimizer | None:
    """The weight optimizer of trial ``trial`` alone: same kind, hyperparameters and current lr as the
    batched one, and its state (Adam's moments and step, SGD's momentum) is the trial's slice.
    Adam and SGD act elementwise, so this is the state the trial alone would hold."""
    if stacked_opt is None:
        return None
    names = {id(p): name for name, p in stacked.named_parameters()}
    singles = dict(single.named_parameters())
    saved = stacked_opt.state_dict()
    stacked_params = [p for group in stacked_opt.param_groups for p in group["params"]]
    params = [singles[names[id(p)]] for p in stacked_params]
    state = {}
    for index, values in saved["state"].items():
        shape = stacked_params[index].shape
        state[index] = {
            key: trial_view(v, k)[trial].reshape(params[index].shape).clone()
            if torch.is_tensor(v) and v.shape == shape else (v.clone() if torch.is_tensor(v) else v)
            for key, v in values.items()
        }
    optimizer = type(stacked_opt)(params, **stacked_opt.defaults)
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return optimizer


def trial_run(search, run: SearchRun, trial: int) -> SearchRun:
    """Trial ``trial`` of the K-trial ``run`` as a run of its own (K = 1), continuing where it stands.

    The generators are the batched run's own objects (the trial's cached streams), not copies: a
    trial alone continues its noise stream into retraining, so fine-tuning must advance it here too."""
    ctx = run.ctxs[trial]
    with torch.random.fork_rng(devices=[]):  # building the empty supernet must not move the global RNG
        model = run.space.unstack_supernet(run.model, trial, tuple(ctx.ops), ctx.op_config).to(ctx.device)
    frozen = {name for name, p in run.model.named_parameters() if not p.requires_grad}
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    model.train(run.model.training)
    state = run.states[trial]
    batch = TrialBatch([ctx])
    batch.data, batch.noise_generators = [run.batch.data[trial]], [run.batch.noise_generators[trial]]
    return SearchRun(
        ctxs=[ctx], space=run.space, model=model, alpha=run.alpha[trial:trial + 1].detach(), states=[state],
        mixer=Mixer(state, tuple(search.mix_hooks), run.op_mask), batch=batch,
        w_opt=trial_optimizer(run.w_opt, run.model, model, run.k, trial), op_mask=run.op_mask,
        objectives=run.objectives, regularizers=run.regularizers,
    )


def probed_genotypes(search, run: SearchRun, probabilities: list[torch.Tensor]) -> list:
    """Every trial's genotype from a rule that probes and fine-tunes the supernet (DARTS+PT), each
    trial on its own K = 1 run; the fine-tuned supernets go back into ``run.model``. A trial whose
    fine-tuning diverges fails alone; a failed trial gets the argmax genotype as a placeholder
    (its outcome is its failure)."""
    failures, genotypes = run.batch.failures, []
    # Shared counters (BatchNorm's num_batches_tracked) as the search left them: each trial alone
    # counts its own fine-tuning steps only, not those of the trials decided before it.
    counters = {key: v.clone() for key, v in run.model.state_dict().items() if shared_key(key)}
    for t, (ctx, p) in enumerate(zip(run.ctxs, probabilities)):
        if not failures.reasons[t]:
            single = trial_run(search, run, t)
            single.model.load_state_dict(counters, strict=False)
            try:
                genotypes.append(search.discretization.genotype(run.space, p, ctx.ops, SupernetProbe(search, single)))
                store_trial(run.model, single.model, run.k, t)
                continue
            except TrialDiverged as exc:
                failures.fail([t], str(exc))
        genotypes.append(ArgmaxDiscretization().genotype(run.space, p, ctx.ops))
    return genotypes
