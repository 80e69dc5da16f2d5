"""P-DARTS ([002] §3.2.1-3.2.2, METHODS.md M28): search in stages of growing depth while
dropping candidate ops, with operation-level dropout after the skip-like ops.

1D adaptation (METHODS.md M28, CPU note): the sequential space grows in depth (default 4 -> 7
-> 10 layers); the non-sequential space keeps its two cells and only drops ops. Each stage
starts a fresh supernet and alpha (as P-DARTS does) and keeps, per position, the
``stage_ops_kept[s]`` best ops of the previous stage at the corresponding depth
(position i of a stage with n layers maps to position floor(i * n_prev / n) of the previous
stage). The [001] op set has no skip connection, so the dropout acts on the parameter-free
ops (roll, noise, zero), the ops that play skip's "unfair advantage" role. The epochs are split
evenly over the stages (the remainder goes to the last stage). Stage sizes, kept ops and
dropout rates are not stated in METHODS.md; the defaults are our choice, scaled from the
P-DARTS pattern (3 stages, fewer ops and a higher dropout rate in each).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext
from harness.methods.perturbations import ParameterFreeDropout
from harness.methods.search import ComposedSearch


@dataclass
class ProgressiveSearch(ComposedSearch):
    stage_layers: tuple[int, ...] = (4, 7, 10)
    stage_ops_kept: tuple[int, ...] = (4, 3, 2)
    stage_dropout: tuple[float, ...] = (0.0, 0.3, 0.6)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (len(self.stage_layers) == len(self.stage_ops_kept) == len(self.stage_dropout)) or not self.stage_layers:
            raise ValueError("stage_layers, stage_ops_kept and stage_dropout need one entry per stage")
        if any(k < 1 for k in self.stage_ops_kept) or any(n < 1 for n in self.stage_layers):
            raise ValueError("every stage needs at least one layer and one kept op")

    def stage_epochs(self, epochs: int) -> list[int]:
        n = len(self.stage_layers)
        base = epochs // n
        return [base] * (n - 1) + [epochs - base * (n - 1)]

    def stage_space(self, ctx: MethodContext, stage: int):
        last = stage == len(self.stage_layers) - 1
        if ctx.space.name != "sequential" or last:
            return ctx.space
        return type(ctx.space)(n_layers=min(self.stage_layers[stage], ctx.space.n_layers))

    @staticmethod
    def carry_mask(previous: torch.Tensor, n_positions: int, keep: int) -> torch.Tensor:
        """Keep, per new position, the ``keep`` most probable ops of the mapped old position."""
        n_prev, n_ops = previous.shape
        keep = min(keep, n_ops)
        mask = torch.zeros(n_positions, n_ops, dtype=torch.bool, device=previous.device)
        for i in range(n_positions):
            source = min(i * n_prev // n_positions, n_prev - 1)
            mask[i, previous[source].topk(keep).indices] = True
        return mask

    def search(self, ctx: MethodContext) -> SearchOutcome:
        if ctx.epochs < len(self.stage_layers):
            raise ValueError(f"P-DARTS needs at least {len(self.stage_layers)} epochs (one per stage)")
        previous, stages = None, []
        for stage, epochs in enumerate(self.stage_epochs(ctx.epochs)):
            space = self.stage_space(ctx, stage)
            mask = None
            if previous is not None:
                mask = self.carry_mask(previous, space.n_positions, self.stage_ops_kept[stage])
            hooks = (*self.mix_hooks, ParameterFreeDropout(rate=self.stage_dropout[stage]))
            run = self.start(ctx, space, epochs, op_mask=mask, hooks=hooks)
            self.optimize(run, epochs)
            previous = self.relaxation.probabilities(run.masked(run.alpha.detach())).detach()
            previous = previous.masked_fill(torch.isnan(previous), 0.0)
            stages.append({"layers": space.n_positions, "epochs": epochs, "ops_kept": self.stage_ops_kept[stage]})
        outcome = self.finish(run)
        outcome.extra["stages"] = stages
        outcome.extra["epochs_run"] = sum(s["epochs"] for s in stages[:-1]) + run.epochs_run
        return outcome
