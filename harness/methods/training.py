"""Training and evaluation of one network through its task (used by search, retraining and baselines)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from harness.methods.checkpoint import generator_states, restore_generators, to_cpu
from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.schedules import cosine, param_lr_factor
from harness.tasks.base import TrainRecipe


def task_loss(model, task, batch, noise, weights=None, mixer=None) -> torch.Tensor:
    """The task's loss of ``model`` on ``batch`` (training and validation loss alike)."""
    return task.loss(task.forward(model, batch, weights, noise, mixer), batch)


def check_finite(loss: torch.Tensor, where: str) -> None:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrialDiverged(f"diverged: non-finite loss ({value}) {where}")


def make_weight_optimizer(params, optimizer: str, lr: float, weight_decay: float, momentum: float):
    """Adam ([001] does not name the weight optimizer; our choice) or SGD with momentum (DARTS's
    cell search and retraining, [003] section IV-B2-3). Both act elementwise, so one optimizer over
    K stacked trials is K independent ones."""
    params = [p for p in params if p.requires_grad]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def recipe_lr(recipe: TrainRecipe, epoch: int) -> float:
    """The learning rate of ``epoch``: warm-up factor, then the schedule."""
    lr = recipe.lr * param_lr_factor(epoch, recipe.warmup_epochs > 0, recipe.warmup_epochs)
    if recipe.schedule == "cosine":
        lr = cosine(epoch / recipe.epochs, lr, recipe.lr_min)
    return lr


def clip_gradients(params, max_norm: float) -> None:
    """Clip the gradient norm of one trial's weights (DARTS clips at 5); nothing when ``max_norm`` is 0."""
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm, foreach=True)


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
    recipe: TrainRecipe | None = None,
) -> None:
    """Train ``model`` by the task's retraining recipe (or ``recipe``) on batches of ``split``.

    Drop path (where the network has it) ramps linearly from 0 to the recipe's probability over
    the epochs, as DARTS's retraining does (the ramp is not stated in the documents); its draws
    come from ``noise``, so they are the trial's own."""
    task = ctx.task
    recipe = recipe or task.retrain_recipe(ctx.hp, ctx.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        # Nothing to train (a genotype of parameter-free ops only, e.g. all roll): the network is
        # scored as it is, as in a batch of K trials, where its training steps change nothing.
        return
    optimizer = make_weight_optimizer(params, recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.momentum)
    set_drop_path = getattr(model, "set_drop_path", None)
    checkpoint = ctx.checkpoint
    phase = checkpoint.phase("train") if checkpoint is not None else None
    saved = checkpoint.resume(phase) if checkpoint is not None else None
    generators = {"data": data, "noise": noise}
    if saved is not None:  # resume after the last completed epoch (harness.methods.checkpoint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_generators(generators, saved["generators"])
    model.train()
    for epoch in range(0 if saved is None else saved["epoch"] + 1, recipe.epochs):
        set_lr(optimizer, recipe_lr(recipe, epoch))
        if set_drop_path is not None:
            set_drop_path(recipe.drop_path * epoch / recipe.epochs, noise)
        for step in range(task.steps_per_epoch(split)):
            loss = task_loss(model, task, task.sample(data, split), noise, weights_fn())
            check_finite(loss, f"in training, epoch {epoch} step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(params, recipe.grad_clip)
            optimizer.step()
        if checkpoint is not None:
            state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "generators": generator_states(generators)}
            checkpoint.save(phase, to_cpu(state), final=epoch + 1 == recipe.epochs)


def evaluation_streams(ctx: MethodContext) -> tuple[torch.Generator, torch.Generator]:
    """A trial's evaluation draws (data, noise op), fresh at every call: a synthetic task's
    validation set is then the same every time it is scored."""
    return ctx.streams.fresh("eval"), torch.Generator().manual_seed(ctx.streams.seed("eval") + 1)


@torch.no_grad()
def evaluate_metrics(
    model, ctx: MethodContext, weights: torch.Tensor | None = None, mixer=None, split: str = "val"
) -> dict[str, float]:
    """The task's metrics on ``split`` (a synthetic task's validation draws are the same every call)."""
    data, noise = evaluation_streams(ctx)
    was_training = model.training
    model.eval()
    metrics = ctx.task.evaluate(model, data, noise, weights, mixer, split=split)
    model.train(was_training)
    return metrics


@torch.no_grad()
def evaluate_trial_metrics(
    model, ctxs: list[MethodContext], weights: torch.Tensor | None = None, split: str = "val"
) -> list[dict[str, float]]:
    """``evaluate_metrics`` of every trial of a K-trial ``model``, each on its own evaluation draws."""
    streams = [evaluation_streams(c) for c in ctxs]
    was_training = model.training
    model.eval()
    metrics = ctxs[0].task.evaluate_trials(model, [d for d, _ in streams], [n for _, n in streams], weights, split)
    model.train(was_training)
    return metrics


def evaluate_primary(
    model, ctx: MethodContext, weights: torch.Tensor | None = None, mixer=None, split: str = "val"
) -> float:
    """The task's primary metric (the trial's one-shot or architecture score)."""
    return evaluate_metrics(model, ctx, weights, mixer, split)[ctx.task.primary]


def train_from_scratch(genotype, ctx: MethodContext, streams, split: str = "retrain"):
    """``genotype``'s network built from ``streams``' ``retrain_init`` stream and trained on batches of
    ``split`` from its ``retrain_data`` and ``noise_op`` streams (one trial; raises if it diverges)."""
    with streams.seeded_init("retrain_init"):
        model = ctx.space.network(genotype, ctx.op_config).to(ctx.device)
    train_network(model, ctx, streams.generator("retrain_data"), streams.generator("noise_op"), split=split)
    return model


def retrain_and_score(genotype, ctx: MethodContext, streams=None) -> dict[str, dict[str, float]]:
    """Build ``genotype`` from scratch, train it on the task's retraining split for ``ctx.epochs`` and
    score it: ``{"val": metrics, "test": metrics}``. Selection (random search) uses ``val``; the
    trial's architecture score is the primary ``test`` metric. A synthetic task's splits are
    alike, so its test metrics are its validation metrics (no second evaluation)."""
    model = train_from_scratch(genotype, ctx, streams or ctx.streams)
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
