"""K trials of one row as one computation: their streams, batches, losses and failures.

The engine's one seam to the task (harness/spaces/trial_axis.py for the networks' layout):
every trial draws its batches from its own data stream and its noise from its own noise
stream, gets its own loss, and the *sum* of the losses of the live trials is what backward
sees, so each trial's gradients are exactly its own. K = 1 makes the single-trial calls of the
task (``sample``, ``forward`` with (positions, ops) weights, ``loss``), so one trial alone
computes exactly what it always did.

A trial whose loss turns non-finite fails at that step, with its reason, and leaves the sum
from then on: its batch mates are unaffected.
"""

from __future__ import annotations

import torch

from harness.methods.checkpoint import generator_states, restore_generators
from harness.methods.context import MethodContext


class TrialFailures:
    """Per-trial divergence: the first non-finite loss fails a trial, with its reason. A trial
    that early stopping ended (``stop``) also leaves the sum, without a reason: it is done."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.reasons = [""] * k
        self.active = torch.ones(k, dtype=torch.bool, device=device)

    def stop(self, trials: list[int]) -> None:
        for t in trials:
            self.active[t] = False

    @property
    def succeeded(self) -> torch.Tensor:
        """bool (K,): the trials that have not failed (running or stopped)."""
        return torch.tensor([not r for r in self.reasons], dtype=torch.bool, device=self.active.device)

    def check(self, losses: torch.Tensor, where: str) -> None:
        newly = self.active & ~torch.isfinite(losses.detach())
        for s in torch.nonzero(newly).flatten().tolist():
            self.reasons[s] = f"diverged: non-finite loss ({float(losses[s].detach())}) {where}"
        self.active &= ~newly

    def fail(self, trials: list[int], reason: str) -> None:
        for t in trials:
            if bool(self.active[t]):
                self.reasons[t] = reason
                self.active[t] = False

    def masked_sum(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.where(self.active, losses, torch.zeros_like(losses)).sum()

    @property
    def any_alive(self) -> bool:
        return bool(self.active.any())

    def state(self) -> dict:
        return {"reasons": list(self.reasons), "active": self.active.cpu()}

    def load(self, saved: dict) -> None:
        self.reasons, self.active = list(saved["reasons"]), saved["active"].to(self.active.device)


class TrialBatch:
    """The trials ``ctxs`` (one row, different seeds) and their ``data_stream`` batches."""

    def __init__(self, ctxs: list[MethodContext], data_stream: str = "data", noise_stream: str = "noise_op",
                 streams: list | None = None) -> None:
        self.ctxs = ctxs
        self.k = len(ctxs)
        self.task = ctxs[0].task
        streams = streams or [c.streams for c in ctxs]
        self.data = [s.generator(data_stream) for s in streams]
        self.noise_generators = [s.generator(noise_stream) for s in streams]
        self.failures = TrialFailures(self.k, ctxs[0].device)

    @property
    def noise(self):
        """The noise op's generator(s): one for one trial, else one per trial."""
        return self.noise_generators[0] if self.k == 1 else self.noise_generators

    def sample(self, split: str):
        if self.k == 1:
            return self.task.sample(self.data[0], split)
        return self.task.sample_trials(self.data, split)

    def output(self, model, batch, weights: torch.Tensor | None, mixer=None, noise=None):
        """The model's output; ``weights`` (K, positions, ops) mixing weights or None."""
        if weights is not None and self.k == 1 and weights.dim() == 3:
            weights = weights[0]
        return self.task.forward(model, batch, weights, self.noise if noise is None else noise, mixer)

    def losses(self, output, batch) -> torch.Tensor:
        """Every trial's loss (K,)."""
        if self.k == 1:
            return self.task.loss(output, batch).reshape(1)
        return self.task.trial_losses(output, batch)

    def loss(self, model, batch, weights, mixer=None, where: str = "", noise=None) -> torch.Tensor:
        """The summed loss of the live trials (failing the trials whose loss is not finite, if ``where``)."""
        losses = self.losses(self.output(model, batch, weights, mixer, noise), batch)
        if where:
            self.failures.check(losses, where)
        return self.failures.masked_sum(losses)

    def _named_generators(self) -> dict[str, torch.Generator]:
        return {**{f"data{i}": g for i, g in enumerate(self.data)},
                **{f"noise{i}": g for i, g in enumerate(self.noise_generators)}}

    def generator_states(self) -> dict:
        return generator_states(self._named_generators())

    def restore_generators(self, saved: dict) -> None:
        restore_generators(self._named_generators(), saved)

