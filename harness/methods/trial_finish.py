"""The parts of a search's finish and start that act on the trials' whole supernets, over K trials.

DAS-single's pre-trained candidates (``load_candidates``): the K trials' pre-trained network's layers
go into the K-trial supernet's candidates (``SearchFinish._load_pretrained``).

DARTS+PT's discretization (``probed_genotypes``) scores the supernet with each candidate of a
position masked out and fine-tunes it between decisions. The K trials run it as one computation
(``SupernetTrialProbe``): every score evaluates all K supernets, each masked at the same position, on each
trial's own probe batches and noise; each trial decides on its own scores; the fine-tuning trains
the K supernets with their own decided weights, each on its own data and noise streams, with the
run's weight optimizer (Adam and SGD act elementwise). A trial whose fine-tuning diverges fails
alone and leaves the sum. The fine-tuned supernets stay in the stacked one, whose inherited metrics
(issue 12) are then the ones each trial alone reports after its discretization.
"""

from __future__ import annotations

import torch

from harness.methods.discretization import ArgmaxDiscretization
from harness.methods.supernet import (
    FINETUNE_WHERE,
    PROBE_BATCHES,
    SearchRun,
    evaluating,
    probe_seeds,
)
from harness.spaces.trial_axis import shared_key, trial_view


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


class SupernetTrialProbe:
    """``SupernetProbe``'s score and fine-tuning for the K trials of a batched run at once: the same
    ``PROBE_BATCHES`` validation batches per trial (its own seed), the same fixed noise, eval mode."""

    def __init__(self, run: SearchRun) -> None:
        self.run = run
        seeds = [probe_seeds(c) for c in run.ctxs]
        generators = [torch.Generator().manual_seed(batch_seed) for batch_seed, _ in seeds]
        self.batches = [run.ctx.task.sample_trials(generators, "val") for _ in range(PROBE_BATCHES)]
        self.noise_seeds = [noise_seed for _, noise_seed in seeds]

    @torch.no_grad()
    def scores(self, weights: torch.Tensor) -> list[float]:
        """Every trial's mean validation loss over its probe batches, mixed by ``weights`` (K, P, ops)."""
        run = self.run
        totals = [0.0] * run.k
        with evaluating(run.model, run.state):
            for batch in self.batches:
                noise = [torch.Generator().manual_seed(seed) for seed in self.noise_seeds]
                losses = run.batch.losses(run.batch.output(run.model, batch, weights, run.mixer, noise), batch)
                totals = [total + value for total, value in zip(totals, losses.tolist())]
        return [total / len(self.batches) for total in totals]

    def finetune(self, weights: torch.Tensor, steps: int) -> None:
        """``steps`` weight steps of the live trials with fixed mixing weights (K, P, ops)."""
        run = self.run
        run.model.train()
        for _ in range(int(steps)):
            batch = run.batch.sample("train")
            loss = run.batch.loss(run.model, batch, weights.detach(), run.mixer, FINETUNE_WHERE)
            if run.w_opt is None or not run.batch.failures.any_alive:
                return
            run.w_opt.zero_grad(set_to_none=True)
            loss.backward()
            run.w_opt.step()


def probed_genotypes(search, run: SearchRun, probabilities: list[torch.Tensor]) -> list:
    """Every trial's genotype from a rule that probes and fine-tunes the supernet (DARTS+PT), the K
    trials at once (``SupernetTrialProbe``). Every trial that has not failed takes part, also one that
    early stopping ended (alone it runs the rule too); a failed trial gets the argmax genotype as a
    placeholder (its outcome is its failure)."""
    failures = run.batch.failures
    failures.active = failures.succeeded
    genotypes = search.discretization.trial_genotypes(run.space, probabilities, run.ctx.ops, SupernetTrialProbe(run))
    return [ArgmaxDiscretization().genotype(run.space, p, run.ctx.ops) if failures.reasons[t] else genotypes[t]
            for t, p in enumerate(probabilities)]
