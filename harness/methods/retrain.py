"""Retraining K derived architectures from scratch as one computation (the engine's second half).

``retrain_and_score`` of ``training.py`` for every job at once: each job's network is built
alone under its own seed, then the space stacks them (genotypes may differ), every trial draws
its retraining batches and noise from its own streams (a random-search candidate from its child
streams) and is scored on its trial's evaluation stream. K = 1 is ``retrain_and_score`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.methods.checkpoint import to_cpu
from harness.methods.context import MethodContext, Streams, TrialDiverged
from harness.methods.training import (
    evaluate_trial_metrics,
    make_weight_optimizer,
    recipe_lr,
    retrain_and_score,
    set_lr,
    train_from_scratch,
)
from harness.methods.trial_batch import TrialBatch, TrialFailures


@dataclass
class RetrainJob:
    """Train ``genotype`` from scratch with ``streams``; score it on ``ctx``'s validation and test sets."""

    ctx: MethodContext
    genotype: object
    streams: Streams


@dataclass
class RetrainScores:
    val: dict | None = None
    test: dict | None = None
    failure: str = ""


def retrain_trials(jobs: list[RetrainJob]) -> list[RetrainScores]:
    """Every job's validation and test metrics after retraining, or its failure reason."""
    if len(jobs) == 1:
        job = jobs[0]
        try:
            scores = retrain_and_score(job.genotype, job.ctx, job.streams)
        except TrialDiverged as exc:
            return [RetrainScores(failure=str(exc))]
        return [RetrainScores(val=scores["val"], test=scores["test"])]
    net, failures = train_trials(jobs)
    ctxs = [j.ctx for j in jobs]  # scored on their trials' evaluation draws, as retrain_and_score
    task = ctxs[0].task
    val = evaluate_trial_metrics(net, ctxs, split="val")
    test = val if "synthetic-data" in task.capabilities else evaluate_trial_metrics(net, ctxs, split="test")
    return [RetrainScores(failure=r) if r else RetrainScores(val=v, test=t)
            for r, v, t in zip(failures.reasons, val, test)]


def train_trials(jobs: list[RetrainJob], split: str = "retrain") -> tuple[torch.nn.Module, TrialFailures]:
    """The K jobs' networks trained from scratch as one stacked network on batches of ``split``,
    by the task's retraining recipe for ``jobs[0].ctx``'s epochs, and the per-trial failures.

    ``train_network`` for K >= 2 networks: each is initialized alone from its job's
    ``retrain_init`` stream and draws its batches and noise from the job's ``retrain_data`` and
    ``noise_op`` streams; a trial whose loss turns non-finite fails alone. Besides retraining,
    DAS-single's pre-training runs here (``SearchFinish._load_pretrained``). One job is
    ``train_from_scratch`` itself, which raises ``TrialDiverged`` instead of failing the trial."""
    ctx = jobs[0].ctx
    if len(jobs) == 1:
        (job,) = jobs
        return train_from_scratch(job.genotype, job.ctx, job.streams, split), TrialFailures(1, ctx.device)
    task, space = ctx.task, ctx.space
    networks = []
    for job in jobs:
        with job.streams.seeded_init("retrain_init"):
            networks.append(space.network(job.genotype, job.ctx.op_config))
    net = space.stack_networks(networks, [j.genotype for j in jobs], ctx.op_config).to(ctx.device)
    recipe = task.retrain_recipe(ctx.hp, ctx.epochs)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_weight_optimizer(params, recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.momentum)
    batch = TrialBatch([j.ctx for j in jobs], "retrain_data", streams=[j.streams for j in jobs])
    failures = batch.failures
    checkpoint = ctx.checkpoint
    phase = checkpoint.phase("train") if checkpoint is not None else None
    saved = checkpoint.resume(phase) if checkpoint is not None else None
    if saved is not None and saved.get("trials") == len(jobs):
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        batch.restore_generators(saved["generators"])
        failures.load(saved["failures"])
    else:
        saved = None
    net.train()
    drop_path = getattr(net, "set_drop_path", None)
    for epoch in range(0 if saved is None else saved["epoch"] + 1, recipe.epochs):
        set_lr(optimizer, recipe_lr(recipe, epoch))
        if drop_path is not None:
            drop_path(recipe.drop_path * epoch / recipe.epochs, batch.noise_generators)
        for step in range(task.steps_per_epoch(split)):
            loss = batch.loss(net, batch.sample(split), None, where=f"in training, epoch {epoch} step {step}")
            if not failures.any_alive:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            space.clip_stacked(net, recipe.grad_clip)
            optimizer.step()
        if checkpoint is not None:
            checkpoint.save(phase, to_cpu({
                "trials": len(jobs), "epoch": epoch, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "generators": batch.generator_states(), "failures": failures.state(),
            }), final=epoch + 1 == recipe.epochs)
        if not failures.any_alive:
            break
    return net, failures
