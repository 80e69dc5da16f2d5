"""The 1D cosine inverse problems of [001] section 5.1 as a Task.

Same draws from the same generators in the same order as before the Task layer, so stored
trials recompute bit for bit (tests/test_tasks.py checks a committed reference trial).
"""

from __future__ import annotations

import torch

from harness.problems import InverseProblem
from harness.tasks.base import Batch, OpContext, TrainRecipe
from harness.tasks.metrics import METRICS


class InverseTask:
    """Reconstruct x from y = A x + n; loss MSE, metric PSNR ([001] Eq. 5 and section 5.1)."""

    capabilities = frozenset({"signal-1d", "forward-operator", "synthetic-data"})
    metrics = (METRICS.get("psnr"),)
    primary = "psnr"

    def __init__(self, problem: InverseProblem) -> None:
        self.problem = problem
        self.name = problem.config.name

    # Read from the problem's config each time: callers (benchmarks/calibrate_problem.py) swap it.
    @property
    def batch_size(self) -> int:
        return self.problem.config.batch_size

    @property
    def batches_per_epoch(self) -> int:
        return self.problem.config.batches_per_epoch

    def steps_per_epoch(self, split: str) -> int:
        return self.batches_per_epoch

    def retrain_recipe(self, hp, epochs: int) -> TrainRecipe:
        """[001] retrains a found architecture as it searched: the set's weight optimizer, lr,
        weight decay and warm-up, for the row's epochs."""
        return TrainRecipe(
            epochs=epochs, optimizer=hp.param_optimizer, lr=hp.param_lr, weight_decay=hp.param_weight_decay,
            momentum=hp.param_momentum, warmup_epochs=hp.warmup_epochs if hp.param_warmup else 0,
            grad_clip=hp.grad_clip,
        )

    def sample(self, generator: torch.Generator, split: str = "train") -> Batch:
        """A fresh batch; the problems are synthetic, so every split draws new samples alike."""
        x, y = self.problem.sample(self.batch_size, generator)
        return Batch(inputs=y, targets=x)

    def forward(self, model, batch: Batch, weights=None, noise: torch.Generator | None = None, mixer=None):
        """One trial (y (B, M)), or K trials on the channel axis (y (B, K, M), ``noise`` a list of K
        generators, a K-trial model; harness/spaces/trial_axis.py)."""
        y = batch.inputs
        u0 = self.problem.network_input(y) if y.dim() == 2 else self.problem.signal_input(y)
        return model(u0, OpContext(y, self.problem.operator, noise, mixer), weights)

    # ------------------------------------------------------------------------- trial axis
    def sample_trials(self, generators: list[torch.Generator], split: str = "train") -> Batch:
        """Each trial's own batch from its own generator, trials on axis 1: y (B, K, M), x (B, K, N)."""
        batches = [self.sample(g, split) for g in generators]
        return Batch(inputs=torch.stack([b.inputs for b in batches], dim=1),
                     targets=torch.stack([b.targets for b in batches], dim=1))

    def trial_losses(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``loss`` of every trial (K,); their sum gives each trial exactly its own gradients."""
        return ((output - batch.targets) ** 2).mean(dim=(0, 2))

    @torch.no_grad()
    def evaluate_trials(self, model, data: list[torch.Generator], noise: list[torch.Generator] | None = None,
                        weights=None, split: str = "val") -> list[dict[str, float]]:
        """``evaluate`` for K trials at once, each on its own draws from ``data[k]``."""
        totals = [[] for _ in data]
        for _ in range(self.batches_per_epoch):
            batch = self.sample_trials(data, split)
            out = self.forward(model, batch, weights, noise)
            for k in range(len(data)):
                totals[k].append(float(self.problem.psnr(out[:, k], batch.targets[:, k])))
        return [{"psnr": sum(v) / len(v)} for v in totals]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean squared error of the reconstruction over the batch (the training and validation loss)."""
        return ((output.squeeze(1) - batch.targets) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, model, data: torch.Generator, noise: torch.Generator | None = None, weights=None,
                 mixer=None, split: str = "val") -> dict[str, float]:
        """Average PSNR over ``batches_per_epoch`` batches from ``data`` (2432 samples, [001] section 5.1)."""
        scores = []
        for _ in range(self.batches_per_epoch):
            batch = self.sample(data)
            out = self.forward(model, batch, weights, noise, mixer)
            scores.append(float(self.problem.psnr(out.squeeze(1), batch.targets)))
        return {"psnr": sum(scores) / len(scores)}

