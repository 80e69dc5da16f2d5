"""Training and evaluation of one network on fresh samples (used by search, retraining and baselines)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.schedules import param_lr_factor
from harness.spaces import OpContext


def reconstruction_loss(model, problem, x, y, generator, weights=None, mixer=None) -> torch.Tensor:
    """Mean squared error of the reconstruction (the training and validation loss)."""
    ctx = OpContext(y, problem.operator, generator, mixer)
    out = model(problem.network_input(y), ctx, weights)
    return ((out.squeeze(1) - x) ** 2).mean()


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
) -> None:
    """``ctx.epochs`` epochs of ``batches_per_epoch`` steps on freshly drawn samples."""
    problem = ctx.problem
    optimizer = weight_optimizer(model, ctx)
    model.train()
    for epoch in range(ctx.epochs):
        set_lr(optimizer, ctx.hp.param_lr * param_lr_factor(epoch, ctx.hp.param_warmup, ctx.hp.warmup_epochs))
        for step in range(problem.config.batches_per_epoch):
            x, y = problem.sample(problem.config.batch_size, data)
            loss = reconstruction_loss(model, problem, x, y, noise, weights_fn())
            check_finite(loss, f"in training, epoch {epoch} step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@torch.no_grad()
def evaluate_psnr(model, ctx: MethodContext, weights: torch.Tensor | None = None, mixer=None) -> float:
    """Average PSNR on the trial's validation set (2432 fresh samples, the same set every call)."""
    problem = ctx.problem
    data = ctx.streams.fresh("eval")
    noise = torch.Generator().manual_seed(ctx.streams.seed("eval") + 1)
    was_training = model.training
    model.eval()
    scores = []
    for _ in range(problem.config.batches_per_epoch):
        x, y = problem.sample(problem.config.batch_size, data)
        out = model(problem.network_input(y), OpContext(y, problem.operator, noise, mixer), weights)
        scores.append(float(problem.psnr(out.squeeze(1), x)))
    model.train(was_training)
    return sum(scores) / len(scores)


def train_and_evaluate(genotype, ctx: MethodContext, streams=None) -> float:
    """Build ``genotype`` from scratch, train it for ``ctx.epochs`` and return its validation PSNR."""
    streams = streams or ctx.streams
    with streams.seeded_init("retrain_init"):
        model = ctx.space.network(genotype, ctx.op_config).to(ctx.device)
    train_network(model, ctx, streams.generator("retrain_data"), streams.generator("noise_op"))
    return evaluate_psnr(model, ctx)
