"""What a search component sees at each step: progress, the trial's random stream and the space.

Components (relaxations, estimators, regularizers, perturbations, schedules, discretization,
early stopping) are stateless about the trial except through this object, so the same
component instance can serve many trials and a preset stays a plain composition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SearchState:
    epoch: int = 0
    epochs: int = 1
    step: int = 0  # step within the epoch
    steps_per_epoch: int = 1
    # The trial's "arch" stream: every random draw a component makes (Gumbel noise, gate
    # samples, alpha perturbations, channel masks) comes from here, on the CPU, then moves
    # to the device, so a trial's result does not depend on what else runs.
    generator: torch.Generator | None = None
    # False while the supernet is scored (one-shot PSNR) or probed: stochastic relaxations
    # and perturbations then act deterministically / not at all.
    training: bool = True
    ops: tuple[str, ...] = ()
    # bool (K,): which candidate ops have no weights (roll, noise, zero in [001]).
    parameter_free: torch.Tensor | None = None
    space: object | None = None
    # Per-epoch alpha snapshots (detached), oldest first; novelty terms read it.
    alpha_history: list[torch.Tensor] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def total_steps(self) -> int:
        return max(self.epochs * self.steps_per_epoch, 1)

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step

    @property
    def progress(self) -> float:
        """Fraction of the search done, in [0, 1)."""
        return self.global_step / self.total_steps

    def randn(self, shape, dtype=torch.float32) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator, dtype=dtype).to(self.device)

    def rand(self, shape, dtype=torch.float32) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self.generator, dtype=dtype).to(self.device)


class TrialStates:
    """K trials' search states seen as one (the mix hooks of a K-trial supernet).

    What is common to a row's trials (epoch, progress, training, ops, space) is read from the first
    trial; every random draw is made per trial from the trial's own stream and stacked along dim 1,
    the trial axis of the networks' activations ((B, K, N) in 1D, (N, K*C, H, W) in a cell), so a
    trial draws exactly the numbers it draws alone."""

    def __init__(self, states: list[SearchState]) -> None:
        self.states = states

    def __getattr__(self, name: str):
        return getattr(self.__dict__["states"][0], name)

    @property
    def training(self) -> bool:
        return self.states[0].training

    @training.setter
    def training(self, value: bool) -> None:
        for state in self.states:
            state.training = value

    def select(self, trials: list[int]) -> TrialStates:
        """The states of ``trials`` only (the trials that keep an op some others dropped)."""
        return TrialStates([self.states[t] for t in trials])

    def _per_trial(self, draw, shape) -> torch.Tensor:
        shape = tuple(shape)
        k = len(self.states)
        if len(shape) < 2 or shape[1] % k:
            raise ValueError(f"shape {shape} has no trial axis of {k} trials at dim 1")
        block = (shape[0], shape[1] // k, *shape[2:])
        return torch.cat([draw(state, block) for state in self.states], dim=1)

    def randn(self, shape, dtype=torch.float32) -> torch.Tensor:
        return self._per_trial(lambda s, b: s.randn(b, dtype), shape)

    def rand(self, shape, dtype=torch.float32) -> torch.Tensor:
        return self._per_trial(lambda s, b: s.rand(b, dtype), shape)
