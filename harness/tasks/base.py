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
        """A^T (A u - y) for u of shape (B, 1, N)."""
        residual = self.operator.forward(u.squeeze(1)) - self.y
        return self.operator.adjoint(residual).unsqueeze(1)


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

    def forward(self, model, batch: Batch, weights=None, noise: torch.Generator | None = None, mixer=None): ...

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor: ...

    def evaluate(
        self, model, data: torch.Generator, noise: torch.Generator | None = None, weights=None, mixer=None,
        split: str = "val",
    ) -> dict[str, float]: ...
