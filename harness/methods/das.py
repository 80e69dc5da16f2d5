"""DAS ([001] M03): bi-level DARTS as a composition of components.

Each step: one weight step on a training batch (mixing weights fixed), then, unless alpha
is in warm-up, one architecture step on a validation batch with the chosen estimator.
Both batches are freshly drawn. After ``epochs`` epochs the supernet's validation PSNR is
the one-shot score and the discretized genotype is handed back for retraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext
from harness.methods.discretization import ArgmaxDiscretization
from harness.methods.estimators import make_estimator
from harness.methods.relaxation import SoftmaxRelaxation
from harness.methods.schedules import alpha_lr_factor, param_lr_factor
from harness.methods.training import (
    check_finite,
    evaluate_psnr,
    reconstruction_loss,
    set_lr,
    weight_optimizer,
)

ALPHA_INIT_SCALE = 1e-3  # alpha ~ 1e-3 * N(0, 1), as in DARTS


def alpha_optimizer(alpha: torch.Tensor, ctx: MethodContext) -> torch.optim.Optimizer:
    hp = ctx.hp
    if hp.alpha_optimizer == "adam":
        return torch.optim.Adam([alpha], lr=hp.alpha_lr, betas=(0.5, 0.999), weight_decay=hp.alpha_weight_decay)
    return torch.optim.SGD([alpha], lr=hp.alpha_lr, weight_decay=hp.alpha_weight_decay)


@dataclass
class DAS:
    name: str = "das"
    entry: str = "M03"
    spaces: tuple[str, ...] = ("sequential", "nonsequential")
    order: int = 1
    relaxation: SoftmaxRelaxation = field(default_factory=SoftmaxRelaxation)
    discretization: ArgmaxDiscretization = field(default_factory=ArgmaxDiscretization)
    description: str = "DARTS-style bi-level search, first order ([001] DAS)"

    def search(self, ctx: MethodContext) -> SearchOutcome:
        problem, hp, streams = ctx.problem, ctx.hp, ctx.streams
        estimator = make_estimator(self.order)
        with streams.seeded_init("init"):
            model = ctx.space.supernet(ctx.ops, ctx.op_config).to(ctx.device)
            alpha = (ALPHA_INIT_SCALE * torch.randn(ctx.space.n_positions, len(ctx.ops))).to(ctx.device)
        alpha.requires_grad_(True)
        w_opt = weight_optimizer(model, ctx)
        a_opt = alpha_optimizer(alpha, ctx)
        data, noise = streams.generator("data"), streams.generator("noise_op")
        weights = [p for p in model.parameters() if p.requires_grad]
        history = [alpha.detach().cpu().tolist()] if ctx.record_alpha_history else None
        model.train()
        for epoch in range(ctx.epochs):
            set_lr(w_opt, hp.param_lr * param_lr_factor(epoch, hp.param_warmup, hp.warmup_epochs))
            a_factor = alpha_lr_factor(
                epoch, ctx.epochs, hp.alpha_warmup, hp.warmup_epochs, hp.alpha_scheduler, hp.linear_end_factor
            )
            set_lr(a_opt, hp.alpha_lr * a_factor)
            for step in range(problem.config.batches_per_epoch):
                x, y = problem.sample(problem.config.batch_size, data)
                loss = reconstruction_loss(model, problem, x, y, noise, self.relaxation.weights(alpha.detach()))
                check_finite(loss, f"in search (weight step), epoch {epoch} step {step}")
                w_opt.zero_grad(set_to_none=True)
                loss.backward()
                w_opt.step()
                if a_factor == 0.0:
                    continue
                xv, yv = problem.sample(problem.config.batch_size, data)

                def train_loss(a, x=x, y=y):
                    return reconstruction_loss(model, problem, x, y, noise, self.relaxation.weights(a))

                def val_loss(a, x=xv, y=yv):
                    return reconstruction_loss(model, problem, x, y, noise, self.relaxation.weights(a))

                grad = estimator.alpha_gradient(alpha, weights, train_loss, val_loss, hp.param_lr)
                if not torch.isfinite(grad).all():
                    check_finite(grad.sum(), f"in search (alpha step), epoch {epoch} step {step}")
                a_opt.zero_grad(set_to_none=True)
                alpha.grad = grad
                a_opt.step()
            if history is not None:
                history.append(alpha.detach().cpu().tolist())
        final = alpha.detach()
        if not torch.isfinite(final).all():
            check_finite(final.sum(), "in the final architecture parameters")
        oneshot = evaluate_psnr(model, ctx, self.relaxation.weights(final))
        genotype = self.discretization.genotype(ctx.space, self.relaxation.probabilities(final), ctx.ops)
        return SearchOutcome(
            genotype=genotype,
            oneshot_score=oneshot,
            final_alphas=final.cpu().tolist(),
            alpha_history=history,
        )
