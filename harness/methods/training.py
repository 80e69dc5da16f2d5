"""Training and evaluation of one network through its task (used by search, retraining and baselines)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.schedules import param_lr_factor


def task_loss(model, task, batch, noise, weights=None, mixer=None) -> torch.Tensor:
    """The task's loss of ``model`` on ``batch`` (training and validation loss alike)."""
    return task.loss(task.forward(model, batch, weights, noise, mixer), batch)


def check_finite(loss: torch.Tensor, where: str) -> None:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrialDiverged(f"diverged: non-finite loss ({value}) {where}")


def weight_optimizer(model, ctx: MethodContext) -> torch.optim.Optimizer:
    """Adam on the network weights (the paper does not name the weight optimizer)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=ctx.hp.param_lr, weight_decay=ctx.hp.param_weight_decay, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_network(
    model,
    ctx: MethodContext,
    data: torch.Generator,
    noise: torch.Generator,
    weights_fn: Callable[[], torch.Tensor | None] = lambda: None,
    split: str = "retrain",
) -> None:
    """``ctx.epochs`` epochs of ``batches_per_epoch`` steps on batches of the task's ``split``."""
    task = ctx.task
    optimizer = weight_optimizer(model, ctx)
    model.train()
    for epoch in range(ctx.epochs):
        set_lr(optimizer, ctx.hp.param_lr * param_lr_factor(epoch, ctx.hp.param_warmup, ctx.hp.warmup_epochs))
        for step in range(task.batches_per_epoch):
            loss = task_loss(model, task, task.sample(data, split), noise, weights_fn())
            check_finite(loss, f"in training, epoch {epoch} step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@torch.no_grad()
def evaluate_metrics(
    model, ctx: MethodContext, weights: torch.Tensor | None = None, mixer=None, split: str = "val"
) -> dict[str, float]:
    """The task's metrics on ``split`` (a synthetic task's validation draws are the same every call)."""
    data = ctx.streams.fresh("eval")
    noise = torch.Generator().manual_seed(ctx.streams.seed("eval") + 1)
    was_training = model.training
    model.eval()
    metrics = ctx.task.evaluate(model, data, noise, weights, mixer, split=split)
    model.train(was_training)
    return metrics


def evaluate_primary(
    model, ctx: MethodContext, weights: torch.Tensor | None = None, mixer=None, split: str = "val"
) -> float:
    """The task's primary metric (the trial's one-shot or architecture score)."""
    return evaluate_metrics(model, ctx, weights, mixer, split)[ctx.task.primary]


def retrain_and_score(genotype, ctx: MethodContext, streams=None) -> dict[str, dict[str, float]]:
    """Build ``genotype`` from scratch, train it on the task's retraining split for ``ctx.epochs`` and
    score it: ``{"val": metrics, "test": metrics}``. Selection (random search) uses ``val``; the
    trial's architecture score is the primary ``test`` metric. A synthetic task's splits are
    alike, so its test metrics are its validation metrics (no second evaluation)."""
    streams = streams or ctx.streams
    with streams.seeded_init("retrain_init"):
        model = ctx.space.network(genotype, ctx.op_config).to(ctx.device)
    train_network(model, ctx, streams.generator("retrain_data"), streams.generator("noise_op"))
    val = evaluate_metrics(model, ctx, split="val")
    test = val if "synthetic-data" in ctx.task.capabilities else evaluate_metrics(model, ctx, split="test")
    return {"val": val, "test": test}


def arch_metrics(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """A trial's ``arch_metrics``: the test metrics, plus the validation ones as ``val_<name>``
    where they differ in kind (finite data sets)."""
    out = dict(scores["test"])
    if scores["val"] is not scores["test"]:
        out.update({f"val_{k}": v for k, v in scores["val"].items()})
    return out
