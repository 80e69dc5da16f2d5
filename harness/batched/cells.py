"""The batched engine on a space with a trial axis (the DARTS cell space): K seeds as one computation.

The space's networks hold K trials (a depthwise conv over K trials is one with K x C channels, a
pointwise conv a grouped conv with K groups; harness/spaces/darts_cell): each trial is built
under its own seed and stacked (``space.stack_supernets`` / ``space.stack_networks``), sees its
own batches from its own streams, and gets its own loss; the summed loss gives every trial
exactly its own gradients, SGD/Adam act elementwise, and gradient clipping is per trial. So a
trial gives the loop engine's result within float tolerance (tests/test_batched_cells.py).

Runs batched: DARTS first and second order (softmax, first- or second-order estimator, the space's discretization,
any weight-lr schedule of the preset) and the Random / Random-search baselines. Everything else
runs in the loop (``unsupported_reason`` says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.methods.base import SearchOutcome
from harness.methods.checkpoint import generator_states, restore_generators, to_cpu
from harness.methods.context import MethodContext, Streams
from harness.methods.estimators import SecondOrder, _grads, set_weights
from harness.methods.hessian import dominant_eigenvalue
from harness.methods.schedules import alpha_lr_factor
from harness.methods.search import ALPHA_INIT_SCALE, INHERITED_PREFIX, alpha_optimizer
from harness.methods.training import make_weight_optimizer, recipe_lr, set_lr
from harness.spaces.trial_axis import clip_per_trial, per_trial, trial_view
from harness.tasks.base import Batch

# Memory format of the K-trial networks. NCHW (the default) gives every trial the same result bit
# for bit, whatever its batch mates (tested; K = 1 runs with a shadow copy, runner/trial.py).
# Channels-last makes a K = 10 search step 2x faster on a CPU (benchmarks/cell_throughput.py: 3.4x
# vs the loop at 16 px, C = 4, against 1.7x), but its kernels sum in another order: a trial then
# depends on its batch size at ~1e-8, and Adam's normalized alpha steps amplify that to ~1e-3 in
# alpha within 2 epochs, enough to flip close edges of a genotype. Reproducibility first: opt in
# only for throughput studies (docs/open_choices.md).
CHANNELS_LAST = False
PROBE_SEED_OFFSET = 2  # the loop's SupernetProbe: its batches come from seed("eval") + 2
HESSIAN_SEED = 12345  # the loop's power-iteration start: 12345 + the last epoch


@dataclass
class CellJob:
    """Train ``genotype`` from scratch with ``streams``; score it on validation and test."""

    ctx: MethodContext
    genotype: object
    streams: Streams


@dataclass
class CellScores:
    val: dict | None = None
    test: dict | None = None
    failure: str = ""


class TrialFailures:
    """Per-trial divergence: the first non-finite loss fails a trial, with its reason; its loss
    leaves the summed loss from then on, so its batch mates are unaffected."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.reasons = [""] * k
        self.active = torch.ones(k, dtype=torch.bool, device=device)

    def check(self, losses: torch.Tensor, where: str) -> None:
        newly = self.active & ~torch.isfinite(losses.detach())
        for s in torch.nonzero(newly).flatten().tolist():
            self.reasons[s] = f"diverged: non-finite loss ({float(losses[s].detach())}) {where}"
        self.active &= ~newly

    def masked_sum(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.where(self.active, losses, torch.zeros_like(losses)).sum()


def _memory_format() -> torch.memory_format:
    return torch.channels_last if CHANNELS_LAST else torch.contiguous_format


def stacked_batch(task, generators: list[torch.Generator], split: str) -> Batch:
    """Each trial's own batch, stacked along channels: inputs (N, K*C, H, W), targets (K, N)."""
    batches = [task.sample(g, split) for g in generators]
    inputs = torch.cat([b.inputs for b in batches], dim=1).contiguous(memory_format=_memory_format())
    return Batch(inputs, torch.stack([b.targets for b in batches]))


def trial_losses(task, output, batch: Batch) -> torch.Tensor:
    """The task's per-sample loss, averaged per trial: (K,)."""
    logits, aux = output if isinstance(output, tuple) else (output, None)
    return torch.stack([
        task.loss(logits[k] if aux is None else (logits[k], aux[k]), Batch(None, batch.targets[k]))
        for k in range(logits.shape[0])
    ])


def second_order_gradient(params: list[torch.Tensor], k: int, alpha: torch.Tensor, train_loss, val_loss,
                          xi: float, fd_radius: float) -> torch.Tensor:
    """DARTS second order for K trials at once: the loop's ``estimators._Unroll`` (virtual step
    w' = w - xi grad_w L_train, finite-difference mixed Hessian-vector product, [004] Eqs 2-3),
    with each trial's own radius eps_t = fd_radius / ||v_t|| over its own slices of the
    trial-major weights. The losses are sums over trials, so every gradient is per trial."""
    backup = [p.detach().clone() for p in params]
    unrolled = [b - xi * g for b, g in zip(backup, _grads(train_loss(alpha.detach()), params))]
    try:
        set_weights(params, unrolled)
        a = alpha.detach().requires_grad_(True)
        d_alpha, *v = _grads(val_loss(a), [a, *params])
        # ||v_t|| summed as the loop sums it (per parameter, then over parameters, in float32); the
        # hypergradient is chaotic in float noise, so only the same order keeps trials comparable.
        eps = [fd_radius / (math.sqrt(float(sum((x[t] * x[t]).sum() for x in (trial_view(y, k) for y in v))))
                            + 1e-12) for t in range(k)]
        terms = []
        for sign in (1.0, -1.0):
            scale = torch.tensor([sign * e for e in eps], dtype=v[0].dtype, device=v[0].device)
            set_weights(params, [b + per_trial(scale, x, k) * x for b, x in zip(backup, v)])
            a = alpha.detach().requires_grad_(True)
            terms.append(_grads(train_loss(a), [a])[0])
    finally:
        set_weights(params, backup)
    return torch.stack([d_alpha[t] - xi * ((terms[0][t] - terms[1][t]) / (2 * eps[t])) for t in range(k)])


# ----------------------------------------------------------------------------------- search
def search_cells(method, ctxs: list[MethodContext]) -> list[tuple[SearchOutcome | None, str]]:
    """``method`` (plain first-order DARTS) for every trial as one computation; per trial the
    loop's ``ComposedSearch.search`` outcome, or its failure reason."""
    ctx = ctxs[0]
    hp, task, space, k = ctx.hp, ctx.task, ctx.space, len(ctxs)
    supernets, alphas = [], []
    for c in ctxs:
        with c.streams.seeded_init("init"):
            supernets.append(space.supernet(c.ops, c.op_config))
            alphas.append(ALPHA_INIT_SCALE * torch.randn(space.n_positions, len(c.ops)))
    net = space.stack_supernets(supernets).to(ctx.device, memory_format=_memory_format())
    alpha = torch.stack(alphas).to(ctx.device).requires_grad_(True)
    params = [p for p in net.parameters() if p.requires_grad]
    w_opt = make_weight_optimizer(params, hp.param_optimizer, hp.param_lr,
                                  hp.param_weight_decay * method.weight_decay_factor, hp.param_momentum)
    a_opt = alpha_optimizer(alpha, hp)
    data = [c.streams.generator("data") for c in ctxs]
    history = [[alpha[s].detach().cpu().tolist()] for s in range(k)] if ctx.record_alpha_history else None
    failures = TrialFailures(k, ctx.device)
    n = space.n_edges
    epochs = ctx.epochs

    def logits(batch: Batch, weights: torch.Tensor) -> torch.Tensor:
        return net(batch.inputs, weights[:, :n], weights[:, n:], relaxed=True)

    checkpoint = ctx.checkpoint
    phase = checkpoint.phase("search") if checkpoint is not None else None
    saved = checkpoint.resume(phase) if checkpoint is not None else None
    if saved is not None:  # resume after the last completed epoch (harness.methods.checkpoint)
        net.load_state_dict(saved["model"])
        with torch.no_grad():
            alpha.copy_(saved["alpha"].to(alpha.device))
        w_opt.load_state_dict(saved["w_opt"])
        a_opt.load_state_dict(saved["a_opt"])
        restore_generators(dict(enumerate(data)), saved["generators"])
        history, failures.reasons = saved["history"], saved["reasons"]
        failures.active = saved["active"].to(ctx.device)
    net.train()
    for epoch in range(0 if saved is None else saved["epoch"] + 1, epochs):
        set_lr(w_opt, method._param_lr(epoch, epochs, ctx))
        a_factor = alpha_lr_factor(epoch, epochs, hp.alpha_warmup, hp.warmup_epochs, hp.alpha_scheduler,
                                   hp.linear_end_factor)
        set_lr(a_opt, hp.alpha_lr * a_factor)
        for step in range(task.batches_per_epoch):
            batch = stacked_batch(task, data, "train")
            losses = trial_losses(task, logits(batch, torch.softmax(alpha.detach(), -1)), batch)
            failures.check(losses, f"in search (weight step), epoch {epoch} step {step}")
            w_opt.zero_grad(set_to_none=True)
            failures.masked_sum(losses).backward()
            clip_per_trial(params, k, hp.grad_clip)
            w_opt.step()
            if a_factor == 0.0:
                continue
            val = stacked_batch(task, data, "val")

            def summed(a: torch.Tensor, b: Batch, where: str = "") -> torch.Tensor:
                losses = trial_losses(task, logits(b, torch.softmax(a, -1)), b)
                if where:
                    failures.check(losses, where)
                return failures.masked_sum(losses)

            a = alpha.detach().requires_grad_(True)
            where = f"in search (alpha step), epoch {epoch} step {step}"
            if isinstance(method.estimator, SecondOrder):
                grad = second_order_gradient(params, k, alpha, lambda x, b=batch: summed(x, b),
                                             lambda x, b=val, w=where: summed(x, b, w), hp.param_lr,
                                             method.estimator.fd_radius)
            else:
                (grad,) = torch.autograd.grad(summed(a, val, where), [a])
            a_opt.zero_grad(set_to_none=True)
            alpha.grad = torch.where(failures.active.view(-1, 1, 1), grad, torch.zeros_like(grad))
            a_opt.step()
        if history is not None:
            for s in range(k):
                history[s].append(alpha[s].detach().cpu().tolist())
        if checkpoint is not None:
            checkpoint.save(phase, to_cpu({
                "epoch": epoch, "model": net.state_dict(), "alpha": alpha.detach(), "w_opt": w_opt.state_dict(),
                "a_opt": a_opt.state_dict(), "generators": generator_states(dict(enumerate(data))),
                "history": history, "reasons": list(failures.reasons), "active": failures.active,
            }), final=epoch + 1 == epochs)
    final = alpha.detach()
    mix = torch.softmax(final, -1)
    net.eval()
    oneshot = task.evaluate_trials(lambda x: net(x, mix[:, :n], mix[:, n:], relaxed=True), "val")
    genotypes = [method.discretization.genotype(space, method.relaxation.probabilities(final[s]), c.ops)
                 for s, c in enumerate(ctxs)]
    inherited = [{} for _ in ctxs]
    if "genotype-mask" in space.capabilities:  # the derived genotypes with the supernet's weights
        masks = torch.stack([space.genotype_weights(g, c.ops) for g, c in zip(genotypes, ctxs)]).to(final.device)
        scores = task.evaluate_trials(lambda x: net(x, masks[:, :n], masks[:, n:], relaxed=True), "val")
        inherited = [{f"{INHERITED_PREFIX}{key}": v for key, v in m.items()} for m in scores]
    results = []
    for s, c in enumerate(ctxs):
        if failures.reasons[s]:
            results.append((None, failures.reasons[s]))
            continue
        extra = {"epochs_run": epochs, "stopped_early": False}
        if method.hessian != "none":
            extra["hessian_eigenvalue"] = _hessian(space, net, s, c, final[s], method.hessian_iterations, epochs)
        outcome = SearchOutcome(
            genotype=genotypes[s],
            oneshot_score=oneshot[s][task.primary],
            oneshot_metrics={**oneshot[s], **inherited[s]},
            final_alphas=final[s].cpu().tolist(),
            alpha_history=None if history is None else history[s],
            extra=extra,
        )
        results.append((outcome, ""))
    return results


def _hessian(space, net, trial: int, ctx: MethodContext, alpha: torch.Tensor, iterations: int, epochs: int) -> float:
    """The loop's end-of-search diagnostic for one trial: the dominant eigenvalue of its validation
    loss on the first probe batch (eval mode) w.r.t. its alpha, from the same power-iteration start."""
    single = space.unstack_supernet(net, trial)
    single.eval()
    batch = ctx.task.sample(torch.Generator().manual_seed(ctx.streams.seed("eval") + PROBE_SEED_OFFSET), "val")

    def loss(a: torch.Tensor) -> torch.Tensor:
        return ctx.task.loss(ctx.task.forward(single, batch, torch.softmax(a, -1)), batch)

    gen = torch.Generator().manual_seed(HESSIAN_SEED + epochs - 1)
    try:
        return float(dominant_eigenvalue(loss, alpha.detach(), method="auto", iterations=iterations, generator=gen))
    except (RuntimeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------- retraining
def train_cells(jobs: list[CellJob]) -> list[CellScores]:
    """``retrain_and_score`` of the loop engine for every job, as one computation."""
    ctx = jobs[0].ctx
    task, space, k = ctx.task, ctx.space, len(jobs)
    networks = []
    for job in jobs:
        with job.streams.seeded_init("retrain_init"):
            networks.append(space.network(job.genotype, job.ctx.op_config))
    net = space.stack_networks(networks).to(ctx.device)
    recipe = task.retrain_recipe(ctx.hp, ctx.epochs)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_weight_optimizer(params, recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.momentum)
    data = [j.streams.generator("retrain_data") for j in jobs]
    noise = [j.streams.generator("noise_op") for j in jobs]
    failures = TrialFailures(k, ctx.device)
    generators = {**{f"data{i}": g for i, g in enumerate(data)}, **{f"noise{i}": g for i, g in enumerate(noise)}}
    checkpoint = ctx.checkpoint
    phase = checkpoint.phase("train") if checkpoint is not None else None
    saved = checkpoint.resume(phase) if checkpoint is not None else None
    if saved is not None:
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_generators(generators, saved["generators"])
        failures.reasons, failures.active = saved["reasons"], saved["active"].to(ctx.device)
    net.train()
    for epoch in range(0 if saved is None else saved["epoch"] + 1, recipe.epochs):
        set_lr(optimizer, recipe_lr(recipe, epoch))
        net.set_drop_path(recipe.drop_path * epoch / recipe.epochs, noise)
        for step in range(task.steps_per_epoch("retrain")):
            batch = stacked_batch(task, data, "retrain")
            losses = trial_losses(task, net(batch.inputs), batch)
            failures.check(losses, f"in training, epoch {epoch} step {step}")
            optimizer.zero_grad(set_to_none=True)
            failures.masked_sum(losses).backward()
            space.clip_stacked(net, recipe.grad_clip)
            optimizer.step()
        if checkpoint is not None:
            checkpoint.save(phase, to_cpu({
                "epoch": epoch, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "generators": generator_states(generators), "reasons": list(failures.reasons),
                "active": failures.active,
            }), final=epoch + 1 == recipe.epochs)
    net.eval()
    forward = lambda x: net(x)[0]  # noqa: E731
    val, test = task.evaluate_trials(forward, "val"), task.evaluate_trials(forward, "test")
    return [CellScores(failure=r) if r else CellScores(val=v, test=t) for r, v, t in zip(failures.reasons, val, test)]
