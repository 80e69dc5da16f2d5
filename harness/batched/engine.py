"""The batched engine: DAS search and fixed-network training for K trials at once.

Trials in one batch share problem, space, op set, method and hyperparameters and differ in
seed. Each keeps its own streams (``MethodContext.streams``): initialization (its loop
network is built under its own seed and its parameters stacked), data, noise-op draws and
evaluation sets, so trial s gives the result it gives alone in the loop engine, within float
tolerance. The batched loss is the *sum* of the per-trial mean losses, so each trial's
gradients are its own; Adam and SGD act elementwise, so one optimizer over stacked tensors is
K independent optimizers. A trial whose loss turns non-finite is recorded as failed at that
step and excluded from the summed loss; its NaNs stay in its own slices (nothing mixes seeds),
so the other trials are unaffected.

What runs batched (``unsupported_reason`` says why anything else falls back to the loop):
the sequential space; plain DAS (softmax, first order, argmax, no other component) and the
baselines (single-op networks, random architectures, random search).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from harness.batched.networks import BatchedSequential
from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext, Streams
from harness.methods.schedules import alpha_lr_factor, param_lr_factor
from harness.methods.search import ALPHA_INIT_SCALE, ComposedSearch, alpha_optimizer
from harness.methods.training import set_lr
from harness.problems.metrics import sample_psnr


@dataclass
class FixedJob:
    """Train ``genotype`` from scratch with ``streams`` and score it on ``ctx``'s evaluation set."""

    ctx: MethodContext
    genotype: list
    streams: Streams


@dataclass
class FixedOutcome:
    score: float = math.nan
    failure: str = ""


@dataclass
class SearchResult:
    outcome: SearchOutcome | None = None
    failure: str = ""
    extra: dict = field(default_factory=dict)


# Fields of ComposedSearch that the batched engine implements only at their defaults.
_DEFAULT_ONLY = (
    "regularizers", "weight_perturbation", "mix_hooks", "early_stopping", "combiner", "objective_penalties",
    "adversarial_epsilon", "ablation_weight", "param_lr_schedule", "weight_decay_factor",
    "weight_steps_per_alpha_step", "pretrained_ops", "init_op", "needs",
)
# On a space with a trial axis (harness.batched.cells) these may differ too.
_TRIAL_AXIS_ALSO = ("param_lr_schedule", "weight_decay_factor", "discretization")


def unsupported_reason(method, ctx: MethodContext) -> str:
    """Empty when ``method`` on ``ctx`` can run batched, else why it runs in the loop engine."""
    trial_axis = "trial-axis" in getattr(ctx.space, "capabilities", ())
    if not trial_axis and ctx.space.name != "sequential":
        return f"the batched engine covers the sequential space and spaces with a trial axis, not {ctx.space.name!r}"
    if isinstance(method, ComposedSearch):
        tolerated = _TRIAL_AXIS_ALSO if trial_axis else ()
        plain = ComposedSearch(name=method.name, entry=method.entry, description=method.description)
        differs = [f for f in _DEFAULT_ONLY if f not in tolerated and getattr(method, f) != getattr(plain, f)]
        kinds = {
            "relaxation": (type(method.relaxation).__name__, "SoftmaxRelaxation"),
            "estimator": (type(method.estimator).__name__, "FirstOrder"),
            "discretization": (type(method.discretization).__name__, "ArgmaxDiscretization"),
        }
        differs += [f"{k} {have}" for k, (have, want) in kinds.items() if have != want and k not in tolerated
                    and not (trial_axis and k == "estimator" and have == "SecondOrder")]
        if trial_axis and type(method.discretization).__name__ == "PerturbationSelection":
            differs.append("discretization by perturbation (it fine-tunes the supernet)")
        if getattr(method.relaxation, "temperature", 1.0) != 1.0:
            differs.append("relaxation temperature")
        if type(method) is not ComposedSearch:
            differs.append(type(method).__name__)
        if differs:
            listed = ", ".join(differs)
            return f"method {method.name!r} uses components the batched engine does not implement ({listed})"
        return ""
    if type(method).__name__ in ("SingleOp", "RandomArchitecture", "RandomSearch"):
        return ""
    return f"method {getattr(method, 'name', method)!r} has no batched implementation"


# --------------------------------------------------------------------------------- helpers
def _sample(ctx: MethodContext, generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    problem = ctx.problem
    pairs = [problem.sample(problem.config.batch_size, g) for g in generators]
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


def batched_psnr(estimate: torch.Tensor, truth: torch.Tensor, peak: str) -> torch.Tensor:
    """Per seed, ``harness.problems.metrics.psnr`` of (B, N) slices: (K,)."""
    return sample_psnr(estimate, truth, peak).mean(dim=1)


class _Failures:
    """Per-trial divergence bookkeeping: the first non-finite loss fails a trial, with its reason."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.reasons = [""] * k
        self.active = torch.ones(k, dtype=torch.bool, device=device)

    def check(self, losses: torch.Tensor, where: str) -> None:
        finite = torch.isfinite(losses.detach())
        newly = self.active & ~finite
        if bool(newly.any()):
            for s in torch.nonzero(newly).flatten().tolist():
                self.reasons[s] = f"diverged: non-finite loss ({float(losses[s].detach())}) {where}"
            self.active &= finite

    def fail(self, seeds: list[int], reason: str) -> None:
        for s in seeds:
            if self.active[s]:
                self.reasons[s] = reason
                self.active[s] = False

    def masked_sum(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.where(self.active, losses, torch.zeros_like(losses)).sum()


def _per_seed_loss(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ((out - x) ** 2).mean(dim=(1, 2))


@torch.no_grad()
def evaluate(
    net: BatchedSequential, ctxs: list[MethodContext], weights: torch.Tensor | None, backend: str
) -> list[float]:
    """Each trial's validation PSNR on its own fixed evaluation set (the loop's ``evaluate_psnr``)."""
    ctx = ctxs[0]
    data = [c.streams.fresh("eval") for c in ctxs]
    noise = [torch.Generator().manual_seed(c.streams.seed("eval") + 1) for c in ctxs]
    totals = [[] for _ in ctxs]
    for _ in range(ctx.problem.config.batches_per_epoch):
        x, y = _sample(ctx, data)
        out = net.forward(ctx.problem.signal_input(y), y, ctx.problem.operator, noise, weights, False, backend)
        for s, value in enumerate(batched_psnr(out, x, ctx.problem.config.psnr_peak).tolist()):
            totals[s].append(value)
    return [sum(v) / len(v) for v in totals]


# ---------------------------------------------------------------------------- fixed networks
def train_fixed(jobs: list[FixedJob], backend: str = "auto") -> list[FixedOutcome]:
    """``train_and_evaluate`` of the loop engine for every job, as one computation."""
    ctx = jobs[0].ctx
    networks = []
    for job in jobs:
        with job.streams.seeded_init("retrain_init"):
            networks.append(job.ctx.space.network(job.genotype, job.ctx.op_config))
    net = BatchedSequential(networks, ctx.op_config, ctx.device)
    failures = fit(net, jobs, None, backend)
    scores = evaluate(net, [j.ctx for j in jobs], None, backend)
    return [FixedOutcome(score=s if not r else math.nan, failure=r) for s, r in zip(scores, failures.reasons)]


def fit(net: BatchedSequential, jobs: list[FixedJob], weights: torch.Tensor | None, backend: str = "auto") -> _Failures:
    """Train ``net``'s weights (mixed by fixed ``weights`` if given) on each job's retraining
    streams for the epochs of its context; returns who failed, and why."""
    ctx = jobs[0].ctx
    hp, problem = ctx.hp, ctx.problem
    optimizer = torch.optim.Adam(net.parameters(), lr=hp.param_lr, weight_decay=hp.param_weight_decay, foreach=True)
    data = [j.streams.generator("retrain_data") for j in jobs]
    noise = [j.streams.generator("noise_op") for j in jobs]
    failures = _Failures(len(jobs), ctx.device)
    for epoch in range(ctx.epochs):
        set_lr(optimizer, hp.param_lr * param_lr_factor(epoch, hp.param_warmup, hp.warmup_epochs))
        for step in range(problem.config.batches_per_epoch):
            x, y = _sample(ctx, data)
            out = net.forward(problem.signal_input(y), y, problem.operator, noise, weights, True, backend)
            losses = _per_seed_loss(out, x)
            failures.check(losses, f"in training, epoch {epoch} step {step}")
            optimizer.zero_grad(set_to_none=True)
            failures.masked_sum(losses).backward()
            optimizer.step()
    return failures


# ------------------------------------------------------------------------------- DAS search
def search_das(ctxs: list[MethodContext], backend: str = "auto") -> list[SearchResult]:
    """Plain DAS (first order, softmax, argmax) for every trial, as one computation; the loop's
    ``ComposedSearch`` with default components, including the end-of-search diagnostics."""
    ctx = ctxs[0]
    hp, problem, space = ctx.hp, ctx.problem, ctx.space
    supernets, alphas = [], []
    for c in ctxs:
        with c.streams.seeded_init("init"):
            supernets.append(space.supernet(c.ops, c.op_config))
            alphas.append(ALPHA_INIT_SCALE * torch.randn(space.n_positions, len(c.ops)))
    net = BatchedSequential(supernets, ctx.op_config, ctx.device)
    alpha = torch.stack(alphas).to(ctx.device).requires_grad_(True)
    w_opt = torch.optim.Adam(net.parameters(), lr=hp.param_lr, weight_decay=hp.param_weight_decay, foreach=True)
    a_opt = alpha_optimizer(alpha, hp)
    data = [c.streams.generator("data") for c in ctxs]
    noise = [c.streams.generator("noise_op") for c in ctxs]
    history = [[alpha[s].detach().cpu().tolist()] for s in range(len(ctxs))] if ctx.record_alpha_history else None
    failures = _Failures(len(ctxs), ctx.device)
    operator = problem.operator
    for epoch in range(ctx.epochs):
        set_lr(w_opt, hp.param_lr * param_lr_factor(epoch, hp.param_warmup, hp.warmup_epochs))
        a_factor = alpha_lr_factor(
            epoch, ctx.epochs, hp.alpha_warmup, hp.warmup_epochs, hp.alpha_scheduler, hp.linear_end_factor
        )
        set_lr(a_opt, hp.alpha_lr * a_factor)
        for step in range(problem.config.batches_per_epoch):
            x, y = _sample(ctx, data)
            mix = torch.softmax(alpha.detach(), dim=-1)
            losses = _per_seed_loss(net.forward(problem.signal_input(y), y, operator, noise, mix, True, backend), x)
            failures.check(losses, f"in search (weight step), epoch {epoch} step {step}")
            w_opt.zero_grad(set_to_none=True)
            failures.masked_sum(losses).backward()
            w_opt.step()
            if a_factor == 0.0:
                continue
            xv, yv = _sample(ctx, data)
            a = alpha.detach().requires_grad_(True)
            out = net.forward(problem.signal_input(yv), yv, operator, noise, torch.softmax(a, dim=-1), True, backend)
            val = _per_seed_loss(out, xv)
            (grad,) = torch.autograd.grad(failures.masked_sum(val), [a])
            bad = ~torch.isfinite(grad).flatten(1).all(dim=1) & failures.active
            if bool(bad.any()):
                where = f"in search (alpha step), epoch {epoch} step {step}"
                failures.fail(torch.nonzero(bad).flatten().tolist(), f"diverged: non-finite loss (nan) {where}")
            grad = torch.where(failures.active.view(-1, 1, 1), grad, torch.zeros_like(grad))
            a_opt.zero_grad(set_to_none=True)
            alpha.grad = grad
            a_opt.step()
        if history is not None:
            for s in range(len(ctxs)):
                history[s].append(alpha[s].detach().cpu().tolist())
    final = alpha.detach()
    mix = torch.softmax(final, dim=-1)
    oneshot = evaluate(net, ctxs, mix, backend)
    eigen = _hessian_eigenvalues(net, ctxs, final, backend)
    results = []
    for s, c in enumerate(ctxs):
        if failures.reasons[s]:
            results.append(SearchResult(failure=failures.reasons[s]))
            continue
        if not torch.isfinite(final[s]).all():
            results.append(SearchResult(failure="diverged: non-finite loss (nan) in the final architecture parameters"))
            continue
        outcome = SearchOutcome(
            genotype=space.discretize(mix[s], c.ops),
            oneshot_score=oneshot[s],
            final_alphas=final[s].cpu().tolist(),
            alpha_history=None if history is None else history[s],
            extra={"epochs_run": c.epochs, "stopped_early": False, "hessian_eigenvalue": eigen[s]},
        )
        results.append(SearchResult(outcome=outcome))
    return results


HESSIAN_FD_STEP = 1e-2


def _hessian_eigenvalues(net: BatchedSequential, ctxs, alpha: torch.Tensor, backend: str) -> list[float]:
    """Each trial's largest eigenvalue of the Hessian of its validation loss w.r.t. its alpha, on the
    loop's probe (``SupernetProbe.val_loss``: first probe batch, eval mode, fixed noise).

    The loop differentiates twice (exact dense Hessian). Here double backward would run through the
    reference ops and cost ~3.6 s per trial, so column j of every trial's Hessian comes at once from
    central differences of exact gradients, (g(a + h e_j) - g(a - h e_j)) / 2h, h = 1e-2: 2 x 40
    compiled forward/backward passes for the whole batch. The truncation error is O(h^2) (tested
    against the loop's exact value to 1e-2 relative)."""
    ctx = ctxs[0]
    pairs = []
    for c in ctxs:
        gen = torch.Generator().manual_seed(c.streams.seed("eval") + 2)
        pairs.append(c.problem.sample(c.problem.config.batch_size, gen))  # the loop's first probe batch
    x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    u0 = ctx.problem.signal_input(y)
    noise_seeds = [c.streams.seed("eval") + 3 for c in ctxs]

    def gradient(a: torch.Tensor) -> torch.Tensor:
        a = a.detach().requires_grad_(True)
        noise = [torch.Generator().manual_seed(seed) for seed in noise_seeds]
        out = net.forward(u0, y, ctx.problem.operator, noise, torch.softmax(a, -1), False, backend)
        (g,) = torch.autograd.grad(_per_seed_loss(out, x).sum(), [a])
        return g.reshape(a.shape[0], -1)

    n = alpha[0].numel()
    columns = []
    for j in range(n):
        step = torch.zeros(n, dtype=alpha.dtype, device=alpha.device)
        step[j] = HESSIAN_FD_STEP
        step = step.view(alpha.shape[1:])
        columns.append((gradient(alpha + step) - gradient(alpha - step)) / (2 * HESSIAN_FD_STEP))
    hessians = torch.stack(columns, dim=2).double()
    values = []
    for h in hessians:
        finite = bool(torch.isfinite(h).all())
        values.append(float(torch.linalg.eigvalsh(0.5 * (h + h.T))[-1]) if finite else math.nan)
    return values
