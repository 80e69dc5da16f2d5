"""What every task gives the layers above: batches, the forward call, the loss, the metrics.

A method never computes a task's loss or metric itself (NNI's strategy/evaluator split): it asks
the task. Task methods take random generators, never the whole trial context, so this layer
imports nothing above it. See docs/task_layer.md for the design and the migration plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from harness.tasks.metrics import Metric


@dataclass
class Batch:
    """One batch: what the network sees (``inputs``) and what it is scored against (``targets``).

    1D inverse problems: inputs = measurements y, targets = signals x. Classification: images and
    labels. ``extras`` holds anything else a task's ops need (e.g. OoD images)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    extras: dict = field(default_factory=dict)


OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainRecipe:
    """How a derived network is retrained from scratch: the task owns this, separately from the
    search recipe (the hyperparameter set). The 1D tasks retrain as they search ([001] section
    5.2); image tasks follow DARTS's retraining ([003] section IV-B3, METHODS.md section 0)."""

    epochs: int
    optimizer: str  # "adam" | "sgd"
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0  # SGD only
    schedule: str = "constant"  # "constant" | "cosine" (to ``lr_min`` at the end)
    lr_min: float = 0.0
    warmup_epochs: int = 0  # linear warm-up: factor (e + 1) / W for the first W epochs ([001] param warm-up)
    grad_clip: float = 0.0  # max gradient norm per trial; 0 = none
    drop_path: float = 0.0  # drop-path probability, ramped linearly from 0 over the epochs

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"retraining optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"retraining lr schedule must be one of {LR_SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1 or not self.lr > 0 or not 0 <= self.drop_path < 1:
            raise ValueError("a retraining recipe needs epochs >= 1, lr > 0 and 0 <= drop_path < 1")


class OpContext:
    """What ops need besides their input: the measurement, the forward operator, the trial's
    noise stream (for the noise op), and the search method's ``mixer``.

    ``mixer``, when set, replaces the plain weighted sum inside every mixed op with weights:
    ``mixer(mixed_op, u, ctx, weights)``. Search methods use it for perturbations of op inputs
    and outputs, op masks and auxiliary branches without the lower layers knowing about them.
    """

    def __init__(self, y: torch.Tensor | None, operator, generator: torch.Generator | None, mixer=None) -> None:
        self.y = y
        self.operator = operator
        self.generator = generator
        self.mixer = mixer

    def data_gradient(self, u: torch.Tensor) -> torch.Tensor:
        """A^T (A u - y) for u of shape (B, K, N): K trials on the channel axis, y (B, K, M), or
        one trial with y (B, M)."""
        y = self.y if self.y.dim() == u.dim() else self.y.unsqueeze(1)
        # Contiguous: BLAS may round a strided (B, K, N) view (e.g. the fused CNN's transposed
        # output) differently from the same values laid out densely, which made a trial's numbers
        # depend on whether its batch mates chose the same op (index_select copies densely).
        return self.operator.adjoint(self.operator.forward(u.contiguous()) - y)

    def select(self, trials: list[int]) -> OpContext:
        """The context of a subset of the trials (a discrete layer's op that only some trials chose)."""
        y = self.y if self.y is None or self.y.dim() == 2 else self.y[:, trials]
        return OpContext(y, self.operator, select_trials(self.generator, trials), self.mixer)


def select_trials(generator, trials: list[int]):
    """The generators of ``trials`` from a list of per-trial generators (a single generator serves
    a single trial and is returned as is)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return [generator[i] for i in trials]


class Task(Protocol):
    """The interface methods, engines and runners use (see docs/task_layer.md).

    Splits: ``train`` (weight steps), ``val`` (alpha steps, one-shot score), ``retrain`` (the
    derived network's training), ``test`` (its final score). Synthetic tasks treat them alike."""

    name: str
    capabilities: frozenset[str]
    metrics: tuple[Metric, ...]
    primary: str
    batch_size: int
    batches_per_epoch: int

    def sample(self, generator: torch.Generator, split: str = "train") -> Batch: ...

    def steps_per_epoch(self, split: str) -> int: ...

    def retrain_recipe(self, hp, epochs: int) -> TrainRecipe: ...

    def forward(self, model, batch: Batch, weights=None, noise: torch.Generator | None = None, mixer=None): ...

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor: ...

    def evaluate(
        self, model, data: torch.Generator, noise: torch.Generator | None = None, weights=None, mixer=None,
        split: str = "val",
    ) -> dict[str, float]: ...
